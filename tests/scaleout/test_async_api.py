"""`POST /tasks` with `"async": true` (or `Prefer: respond-async`): 202, then a worker runs it."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from taskengine.config import Settings, load_settings
from taskengine.server import create_app

from .conftest import CHAIN, STEPS
from .helpers import in_process_outputs


@asynccontextmanager
async def serve(settings: Settings):
    app = create_app(settings, environ={})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://te") as api:
            yield api


async def poll_run(api: httpx.AsyncClient, run_id: str, timeout: float = 30) -> list[dict]:
    """GET /runs/{id} until it ends; returns every distinct view seen on the way."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        resp = await api.get(f"/runs/{run_id}")
        assert resp.status_code == 200, resp.text
        view = resp.json()
        if not seen or (view["status"], view["stepCount"]) != (
            seen[-1]["status"],
            seen[-1]["stepCount"],
        ):
            seen.append(view)
        if view["status"] in ("succeeded", "failed"):
            return seen
        assert time.monotonic() < deadline, f"run {run_id} still {view['status']}"
        await asyncio.sleep(0.02)


async def test_async_post_answers_202_and_a_worker_runs_it(cluster):
    settings = load_settings(cluster.env["TASKENGINE_CONFIG"], environ=cluster.env)
    expected = await in_process_outputs(cluster, CHAIN, ["async input", "preferred"])
    async with serve(settings) as api:
        resp = await api.post(
            "/tasks", json={"chain": CHAIN, "input": "async input", "async": True}
        )
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert body["status"] == "queued" and body["runId"]
        assert resp.headers["location"] == f"/runs/{body['runId']}"
        queued = (await api.get(f"/runs/{body['runId']}")).json()
        assert queued["status"] == "queued" and queued["stepCount"] == 0  # no worker yet

        preferred = await api.post(
            "/tasks",
            json={"chain": CHAIN, "input": "preferred"},
            headers={"Prefer": "respond-async, wait=5"},
        )
        assert preferred.status_code == 202, preferred.text
        assert preferred.headers["preference-applied"] == "respond-async"

        cluster.start_worker("--concurrency", "4")
        views = await poll_run(api, body["runId"])
        other = (await poll_run(api, preferred.json()["runId"]))[-1]

    final = views[-1]
    assert final["status"] == "succeeded", final
    assert final["output"] == expected["async input"]
    assert [s["taskID"] for s in final["state"]] == [f"t{i}" for i in range(1, STEPS + 1)]
    assert views[0]["status"] == "queued"
    assert other["output"] == expected["preferred"]


async def test_async_post_without_a_queue_is_a_clear_503(tmp_path: Path, fake_llm):
    settings = Settings.model_validate(
        {"db": f"sqlite:///{tmp_path / 'runs.db'}", "kv": "memory://"}
    )
    async with serve(settings) as api:
        resp = await api.post("/tasks", json={"chain": CHAIN, "input": "x", "async": True})
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error["code"] == "queue_unavailable"
    assert "TASKENGINE_DB=postgresql://" in error["message"]


async def test_async_post_checks_the_chain_and_input_before_queueing(cluster):
    settings = load_settings(cluster.env["TASKENGINE_CONFIG"], environ=cluster.env)
    async with serve(settings) as api:
        bad_break = await api.post(
            "/tasks", json={"chain": CHAIN, "input": "x", "async": True, "breakpoints": ["nope"]}
        )
        bad_input = await api.post(
            "/tasks",
            json={"chain": CHAIN, "input": "abc", "inputType": "int", "async": True},
        )
        listed = (await api.get("/runs")).json()["items"]
    assert bad_break.status_code == 422 and "nope" in bad_break.json()["error"]["message"]
    assert bad_input.status_code == 400 and bad_input.json()["error"]["field"] == "input"
    assert listed == []  # nothing was stored for the refused requests
