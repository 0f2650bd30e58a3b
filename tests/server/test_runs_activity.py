"""Runs (list, show, resume after a breakpoint) and the activity API."""

from __future__ import annotations

from pathlib import Path

import httpx

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import make_settings, serve_asgi
from .test_execution import ASK, ROUTER, assert_error
from .test_registry import SECRET

PAUSING = {
    "id": "review",
    "tasks": [
        {
            "id": "draft",
            "handler": "noop",
            "transition": {"branches": [{"operator": "default", "goto": "approve"}]},
        },
        {"id": "approve", "handler": "noop", "input_var": "draft"},
    ],
}


async def test_runs_list_and_show(api: httpx.AsyncClient) -> None:
    ids = []
    for text in ("a=1", "b=2", "c=3"):
        ids.append(
            (await api.post("/tasks", json={"input": text, "chain": ROUTER})).json()["runId"]
        )
    await api.post(
        "/tasks",
        json={
            "input": "x",
            "chain": {"id": "boom", "tasks": [{"id": "f", "handler": "raise_error"}]},
        },
    )
    listing = (await api.get("/runs", params={"chainId": "router"})).json()
    assert [r["runId"] for r in listing["items"]] == ids[::-1]
    assert {r["status"] for r in listing["items"]} == {"succeeded"}
    failed = (await api.get("/runs", params={"status": "failed"})).json()["items"]
    assert [r["chainId"] for r in failed] == ["boom"]
    page = (await api.get("/runs", params={"limit": 2})).json()
    assert len(page["items"]) == 2 and page["nextCursor"]

    shown = (await api.get(f"/runs/{ids[0]}")).json()
    assert shown["status"] == "succeeded" and shown["output"] == {"a": 1}
    assert [s["taskID"] for s in shown["state"]] == ["parse", "done"]
    for key in ("runId", "chainId", "createdAt", "updatedAt", "error"):
        assert key in shown
    assert_error(await api.get("/runs/nope"), 404, "not_found")


async def test_breakpoint_pauses_and_resume_continues_with_a_changed_variable(
    api: httpx.AsyncClient,
) -> None:
    paused = (await api.post("/tasks", json={"input": "draft text", "chain": PAUSING,
                                             "breakpoints": ["approve"]})).json()  # fmt: skip
    assert paused["status"] == "paused" and paused["pausedAt"] == "approve"
    run_id = paused["runId"]
    assert (await api.get(f"/runs/{run_id}")).json()["status"] == "paused"

    resumed = await api.post(
        f"/runs/{run_id}/resume", json={"set": {"draft": "approved by a person"}}
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "succeeded"
    assert resumed.json()["output"] == "approved by a person"
    assert_error(await api.post("/runs/unknown-run/resume"), 404)


async def test_activity_queries(api: httpx.AsyncClient) -> None:
    await api.post(
        "/tasks", json={"input": "a=1", "chain": ROUTER}, headers={"X-Request-ID": "r-1"}
    )
    await api.post("/tasks", json={"input": "hi", "chain": ASK}, headers={"X-Request-ID": "r-2"})
    logs = (await api.get("/activity/logs", params={"limit": 10})).json()
    assert [(e["subject"], e["requestID"]) for e in logs[:2]] == [("ask", "r-2"), ("router", "r-1")]
    assert (await api.get("/activity/logs", params={"limit": 1})).json()[0]["requestID"] == "r-2"
    recent = [r["id"] for r in (await api.get("/activity/requests")).json()]
    assert recent[:2] == ["r-2", "r-1"]
    operations = (await api.get("/activity/operations")).json()
    assert {"operation": "exec_chain", "subject": "router"} in operations
    by_op = (await api.get("/activity/operations/exec_chain/router")).json()
    assert by_op == [{"id": "r-1"}]
    stateful = (await api.get("/activity/stateful-requests")).json()
    assert {"r-1", "r-2"} <= set(stateful)
    state = (await api.get("/activity/requests/r-2/state")).json()
    assert state[0]["taskID"] == "answer" and state[0]["taskHandler"] == "raw_string"
    assert (await api.get("/activity/requests/unknown")).json() == []


async def test_registered_hooks_survive_a_restart(
    tmp_path: Path, fake_llm: FakeLLMServer, greeter
) -> None:
    settings = make_settings(tmp_path, fake_llm)
    record = {"name": "greeter", "url": greeter["url"], "headers": {"Authorization": SECRET}}
    async with serve_asgi(settings) as client:
        assert (await client.post("/hooks/remote", json=record)).status_code == 201
        assert (await client.post("/taskchains", json=ROUTER)).status_code == 201
    async with serve_asgi(settings) as client:
        chain = {"id": "g", "tasks": [{"id": "hi", "handler": "hook",
                                       "hook": {"name": "greeter", "tool_name": "greet", "args": {"name": "Kay"}}}]}  # fmt: skip
        run = await client.post("/tasks", json={"input": "", "chain": chain})
        assert run.status_code == 200, run.text
        assert run.json()["output"] == {"greeting": "hello Kay"}
        assert greeter["headers"][-1]["Authorization"] == SECRET
        assert (await client.get("/taskchains/router")).status_code == 200


async def test_shared_backends_postgres_store_and_redis_activity(
    tmp_path: Path, fake_llm: FakeLLMServer, pg_dsn: str, pg_schema: str, redis_url: str
) -> None:
    """The configuration several server processes share: PostgreSQL runs, Redis activity."""
    import uuid

    from taskengine.config import Settings

    base = make_settings(tmp_path, fake_llm).model_dump()
    base.update(db=f"{pg_dsn}?schema={pg_schema}", kv=redis_url)
    settings = Settings.model_validate(base)
    rid = f"pg-{uuid.uuid4().hex}"
    async with serve_asgi(settings) as client:
        assert (await client.post("/taskchains", json=ROUTER)).status_code == 201
        run = await client.post(
            "/tasks", json={"input": "a=1", "chainId": "router"}, headers={"X-Request-ID": rid}
        )
        assert run.status_code == 200, run.text
        shown = (await client.get(f"/runs/{run.json()['runId']}")).json()
        assert shown["status"] == "succeeded" and len(shown["state"]) == 2
        listed = (await client.get("/taskchains")).json()["items"]
        assert [c["id"] for c in listed] == ["router"]
        events = (await client.get(f"/activity/requests/{rid}")).json()
        assert [e["subject"] for e in events] == ["router"]
