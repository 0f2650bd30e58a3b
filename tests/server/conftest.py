"""Server fixtures: a FakeLLMServer, settings pointing at it, the app over httpx, a real uvicorn.

`make_app(**server_settings)` builds an app whose lifespan runs for the test; `api` is an
`httpx.AsyncClient` on that app (ASGI, no socket); `live_server` runs it under uvicorn on a
random 127.0.0.1 port in a thread, for clients that need a real socket (the openai SDK).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web

from taskengine.config import Settings
from taskengine.server import create_app
from taskengine.testing._closing import stop_accepting
from taskengine.testing.fake_llm import FakeLLMServer

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(autouse=True)
def _master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote-hook secrets are sealed with the master key: give each test its own."""
    from taskengine.store.secret_store import generate_key

    monkeypatch.setenv("TASKENGINE_SECRET_KEY", generate_key())


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default_reply="Hello from the fake model") as srv:
        yield srv


def make_settings(tmp_path: Path, llm: FakeLLMServer | None, **server: Any) -> Settings:
    """Settings for one test: its own SQLite store, an in-memory activity KV, the fake LLM."""
    limits = server.pop("limits", {})
    metrics = server.pop("metrics", False)
    data: dict[str, Any] = {
        "db": f"sqlite:///{tmp_path / 'server.db'}",
        "kv": "memory://",
        "server": server,
        "limits": limits,
        "metrics": {"enabled": metrics},
        "retry": {"base": 0.01, "max": 0.05},
    }
    if llm is not None:
        data["providers"] = [
            {"name": "fake", "type": "openai_compatible", "base_url": llm.openai_base_url,
             "models": ["fake-model", "other-model"], "timeout": 5}
        ]  # fmt: skip
        data["default_provider"] = "fake"
        data["default_model"] = "fake-model"
        data["default_embed_model"] = "fake-model"
    return Settings.model_validate(data)


@contextlib.asynccontextmanager
async def serve_asgi(
    settings: Settings, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an httpx client talking to it in-process.

    The app sees an empty environment, so provider variables on the host change nothing.
    """
    app = create_app(settings, environ={})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://te", headers=headers
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def api(tmp_path: Path, fake_llm: FakeLLMServer) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_asgi(make_settings(tmp_path, fake_llm)) as client:
        yield client


class _Uvicorn(uvicorn.Server):
    async def shutdown(self, sockets: Any = None) -> None:
        # a connection accepted as the server closes (a browser's preconnect) must not leak
        await stop_accepting(self.servers)
        await super().shutdown(sockets)


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self.server = _Uvicorn(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture
def live_server() -> Iterator[Callable[[Settings], LiveServer]]:
    started: list[LiveServer] = []

    def start(settings: Settings) -> LiveServer:
        server = LiveServer(create_app(settings, environ={})).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "greeter", "version": "1"},
    "paths": {
        "/greet": {
            "post": {
                "operationId": "greet",
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}},
            }
        }
    },
}  # fmt: skip


@pytest.fixture
async def greeter() -> AsyncIterator[dict[str, Any]]:
    """A real OpenAPI service on 127.0.0.1 that records the headers of each call."""
    seen: dict[str, Any] = {"headers": []}

    async def doc(request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def greet(request: web.Request) -> web.Response:
        seen["headers"].append(dict(request.headers))
        body = await request.json()
        return web.json_response({"greeting": f"hello {body['name']}"})

    app = web.Application()
    app.router.add_get("/openapi.json", doc)
    app.router.add_post("/greet", greet)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    seen["url"] = f"http://127.0.0.1:{port}"
    try:
        yield seen
    finally:
        await runner.cleanup()
