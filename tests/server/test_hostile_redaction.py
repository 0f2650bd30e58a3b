"""Issue 14, item 4: write-only values of any type never leak (responses, run state, activity, DBs)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from taskengine.redaction import Redactor
from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import make_settings, serve_asgi

PIN = 903175313
FLAG_KEY = "te_issue14_vip"

ECHO_DOC = {
    "openapi": "3.1.0",
    "info": {"title": "echo", "version": "1"},
    "paths": {"/echo": {"post": {"operationId": "echo", "requestBody": {"content": {
        "application/json": {"schema": {"type": "object",
                                        "properties": {"note": {"type": "string"}}}}}}}}},
}  # fmt: skip


@pytest.fixture
async def echo_service() -> AsyncIterator[str]:
    """A real service that answers with everything it was sent (as a careless API might)."""

    async def doc(request: web.Request) -> web.Response:
        return web.json_response(ECHO_DOC)

    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"received": body, "text": f"pin is {body.get('te_issue14_pin')}"})

    app = web.Application()
    app.router.add_get("/openapi.json", doc)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _db_text(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            json.dumps(row, default=str)
            for table in tables
            for row in conn.execute(f'SELECT * FROM "{table}"')
        )


async def test_injected_number_never_leaks(
    tmp_path: Path, fake_llm: FakeLLMServer, echo_service: str
) -> None:
    settings = make_settings(tmp_path, fake_llm)
    data = settings.model_dump(by_alias=True)
    data["kv"] = f"sqlite:///{tmp_path / 'activity.db'}"
    settings = type(settings).model_validate(data)
    chain = {"id": "leaky", "tasks": [
        {"id": "call", "handler": "hook",
         "hook": {"name": "echoer", "tool_name": "echo", "args": {"note": "{{ input }}"}},
         "transition": {"branches": [{"operator": "default", "goto": "ask"}]}},
        {"id": "ask", "handler": "raw_string", "prompt_template": "Summarise: {{ call }}",
         "transition": {"branches": [{"operator": "default", "goto": "end"}]}},
    ]}  # fmt: skip
    async with serve_asgi(settings) as api:
        created = await api.post("/hooks/remote", json={
            "name": "echoer", "url": echo_service,
            "inject_body": {"te_issue14_pin": PIN, FLAG_KEY: True,
                            "te_issue14_nested": {"code": 4242.5}},
        })  # fmt: skip
        assert created.status_code == 201, created.text
        run = await api.post("/tasks", json={"input": "hello", "chain": chain})
        assert run.status_code == 200, run.text
        shown = await api.get(f"/runs/{run.json()['runId']}")
        activity = await api.get("/activity/logs")
    seen = [run.text, shown.text, activity.text, json.dumps(fake_llm.requests, default=str)]
    seen += [_db_text(tmp_path / "server.db"), _db_text(tmp_path / "activity.db")]
    for text in seen:
        assert str(PIN) not in text
        assert "4242.5" not in text
    call_output = run.json()["state"][0]
    assert "hello" in json.dumps(call_output) or run.json()["status"] == "succeeded"


def test_one_redactor_masks_every_type() -> None:
    redactor = Redactor()
    redactor.add({"pin": PIN, "flag": True, "deep": [{"token": "abcd-1234"}], "small": 7},
                 injected=True)  # fmt: skip
    masked = redactor.value(
        {"echo": {"pin": PIN, "flag": False, "small": 7}, "n": PIN, "other": 7,
         "text": f"pin={PIN}; token abcd-1234", "list": [PIN, 4.5]}
    )  # fmt: skip
    assert masked == {
        "echo": {"pin": "***", "flag": "***", "small": "***"},
        "n": "***",
        "other": 7,
        "text": "pin=***; token ***",
        "list": ["***", 4.5],
    }
