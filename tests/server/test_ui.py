"""The inspector's pages and forms over HTTP (no browser): auth, typed edits, refusals, SSE."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from taskengine.config import Settings
from taskengine.server.ui.forms import parse_value, parse_variables
from taskengine.server.ui.graph import chain_svg
from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, make_settings, serve_asgi

COUNT_CHAIN = {
    "id": "counter",
    "tasks": [
        {"id": "count", "handler": "parse_number", "prompt_template": "Count {{ input }}",
         "transition": {"branches": [{"operator": "default", "goto": "say"}]}},
        {"id": "say", "handler": "raw_string", "prompt_template": "Say {{ count }}",
         "transition": {"branches": [{"operator": "default", "goto": "end"}]}},
    ],
}  # fmt: skip


async def paused_run(client: httpx.AsyncClient) -> str:
    stored = await client.post("/taskchains", json=COUNT_CHAIN)
    assert stored.status_code == 201, stored.text
    started = await client.post(
        "/ui/chains/counter/run", data={"input": "apples", "breakpoint": "say"}
    )
    assert started.status_code == 303
    run_id = started.headers["location"].rsplit("/", 1)[1]
    for _ in range(200):
        record = (await client.get(f"/runs/{run_id}")).json()
        if record["status"] == "paused":
            return run_id
        await asyncio.sleep(0.02)
    raise AssertionError(f"run did not pause: {record['status']}")


async def test_pages_need_the_token_from_header_or_login_cookie(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    async with serve_asgi(make_settings(tmp_path, fake_llm, api_token=TOKEN)) as client:
        anonymous = await client.get("/ui/chains")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/ui/login?next=/ui/chains"
        assert (await client.get("/ui/static/ui.css")).status_code == 200  # the login page uses it
        with_header = await client.get("/ui", headers={"Authorization": f"Bearer {TOKEN}"})
        assert with_header.status_code == 200 and "Runs" in with_header.text
        wrong = await client.post("/ui/login", data={"token": "nope", "next": "/ui"})
        assert wrong.status_code == 401
        signed = await client.post("/ui/login", data={"token": TOKEN, "next": "//evil.test"})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert (await client.get("/ui")).status_code == 200  # the cookie now
        assert (await client.get("/runs")).status_code == 401  # the API still wants the header


async def test_typed_edit_is_validated_and_then_resumes(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule(match="Count", reply="7")
    fake_llm.add_rule(match="Say", reply=lambda req: "said " + req["messages"][-1]["content"])
    async with serve_asgi(make_settings(tmp_path, fake_llm)) as client:
        run_id = await paused_run(client)
        page = await client.get(f"/ui/runs/{run_id}")
        assert 'name="var:count" value="7"' in page.text

        bad = await client.post(f"/ui/runs/{run_id}/resume", data={"var:count": "seven"})
        assert bad.status_code == 400
        assert 'id="error-count"' in bad.text and "expected a whole number" in bad.text
        assert (await client.get(f"/runs/{run_id}")).json()["status"] == "paused"

        good = await client.post(f"/ui/runs/{run_id}/resume", data={"var:count": "12"})
        assert good.status_code == 303
        for _ in range(200):
            record = (await client.get(f"/runs/{run_id}")).json()
            if record["status"] == "succeeded":
                break
            await asyncio.sleep(0.02)
        assert record["output"] == "said Say 12"
        again = await client.post(f"/ui/runs/{run_id}/resume", data={})
        assert again.status_code == 409 and "cannot be resumed" in again.text


async def test_cross_origin_posts_and_unknown_runs_are_refused(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    async with serve_asgi(make_settings(tmp_path, fake_llm)) as client:
        forged = await client.post(
            "/ui/chains", data={"definition": "id: x"}, headers={"Origin": "http://evil.test"}
        )
        assert forged.status_code == 403
        missing = await client.get("/ui/runs/nope")
        assert missing.status_code == 404 and missing.json()["error"]["message"]


async def test_upload_shows_lint_problems_with_their_field(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    async with serve_asgi(make_settings(tmp_path, fake_llm)) as client:
        broken = {**COUNT_CHAIN, "tasks": [{**COUNT_CHAIN["tasks"][0], "handler": "no_such"}]}
        reply = await client.post("/ui/chains", data={"definition": json.dumps(broken)})
        assert reply.status_code == 400
        assert "<code>handler</code> (task count): unknown handler" in reply.text
        reply = await client.post("/ui/chains", data={"definition": "id: [unclosed"})
        assert reply.status_code == 400 and "invalid YAML" in reply.text


async def test_upload_over_a_stored_id_is_a_conflict_unless_replace_is_ticked(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    """As the API (POST 409, PUT replaces): the form never overwrites a chain by accident."""
    async with serve_asgi(make_settings(tmp_path, fake_llm)) as client:
        assert (await client.post("/taskchains", json=COUNT_CHAIN)).status_code == 201
        changed = {**COUNT_CHAIN, "description": "second version"}
        reply = await client.post("/ui/chains", data={"definition": json.dumps(changed)})
        assert reply.status_code == 409
        assert "<code>id</code>: a chain with id &#39;counter&#39; is already stored" in reply.text
        assert 'name="replace" value="1" id="replace">' in reply.text  # not ticked for them
        stored = (await client.get("/taskchains/counter")).json()
        assert "description" not in stored or stored["description"] != "second version"
        reply = await client.post(
            "/ui/chains", data={"definition": json.dumps(changed), "replace": "1"}
        )
        assert reply.status_code == 303 and reply.headers["location"] == "/ui/chains/counter"
        assert (await client.get("/taskchains/counter")).json()["description"] == "second version"


async def test_the_timeline_shows_each_steps_tokens_and_cost(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule(reply="5")
    data = make_settings(tmp_path, fake_llm).model_dump(by_alias=True)
    data["prices"] = {"fake-model": {"input_per_1m": 1000.0, "output_per_1m": 2000.0}}
    async with serve_asgi(Settings.model_validate(data)) as client:
        assert (await client.post("/taskchains", json=COUNT_CHAIN)).status_code == 201
        done = await client.post("/tasks", json={"chainId": "counter", "input": "apples"})
        assert done.status_code == 200, done.text
        run_id = done.json()["runId"]
        steps = (await client.get(f"/runs/{run_id}")).json()["state"]
        page = (await client.get(f"/ui/runs/{run_id}")).text
    assert [s["taskID"] for s in steps] == ["count", "say"]
    for step in steps:
        meta = step["meta"]
        assert meta["input_tokens"] > 0 and meta["output_tokens"] > 0 and meta["cost"] > 0
        tokens = f'<td class="tokens">{meta["input_tokens"]}/{meta["output_tokens"]}</td>'
        assert tokens in page
        assert f'<td class="cost">{meta["cost"]:.6g}</td>' in page


def test_sse_stream_reports_the_run(live_server, tmp_path: Path, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule(reply="5")
    server = live_server(make_settings(tmp_path, fake_llm))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/taskchains", json=COUNT_CHAIN).status_code == 201
        started = client.post("/ui/chains/counter/run", data={"input": "x", "breakpoint": "say"})
        run_id = started.headers["location"].rsplit("/", 1)[1]
        with client.stream("GET", f"/ui/runs/{run_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == "event: update"
            data = json.loads(next(lines).removeprefix("data: "))
    assert data["status"] in ("running", "paused")


def test_graph_marks_path_and_current_task() -> None:
    svg = chain_svg(COUNT_CHAIN, ["count"], "say")
    assert '<g class="node visited" data-task="count">' in svg
    assert '<g class="node current" data-task="say">' in svg
    assert svg.count('class="edge taken"') == 1
    assert "<script" not in chain_svg({"tasks": [{"id": "<script>", "transition": {}}]})


def test_typed_values_parse_or_say_what_was_expected() -> None:
    assert parse_value("3", "int") == 3
    assert parse_value("true", "bool") is True
    assert parse_value('{"a": 1}', "json") == {"a": 1}
    with pytest.raises(ValueError, match="true or false"):
        parse_value("maybe", "bool")
    changed, errors = parse_variables(
        {"var:n": "4", "var:s": "same", "var:ghost": "1"}, {"n": 3, "s": "same"},
        {"n": "int", "s": "string"},
    )  # fmt: skip
    assert changed == {"n": 4}
    assert errors == {"ghost": "no such variable in this run"}
