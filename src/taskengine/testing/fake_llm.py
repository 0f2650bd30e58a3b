"""A real HTTP server with scripted LLM replies, for tests of chains and providers.

`FakeLLMServer` speaks OpenAI's chat-completions API (`/v1/...`) and Ollama's native API
(`/api/...`) on 127.0.0.1, runs in a background thread with its own event loop (so sync and
async tests can share it), answers from rules that match the last user message, injects faults
per rule, and records every request so tests can assert on what was sent::

    with FakeLLMServer(default_reply="ok") as srv:
        srv.add_rule(match="weather", tool_calls=[{"name": "weather.get", "arguments": {"city": "Oslo"}}])
        srv.add_rule(regex=r"^fail", status=500)
        ...  # point a provider at srv.openai_base_url or srv.url
        assert srv.last_request().temperature == 0.2
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from taskengine.testing import _fake_wire as wire
from taskengine.testing._closing import stop_accepting
from taskengine.testing._fake_handlers import FakeHandlers
from taskengine.testing._fake_records import FakeRule, RecordedRequest, Reply, read_request
from taskengine.testing._fake_wire import count_tokens

__all__ = ["FakeLLMServer", "FakeRule", "RecordedRequest", "count_tokens"]


class FakeLLMServer:
    """Scripted OpenAI-compatible and Ollama server on 127.0.0.1 (random port by default)."""

    def __init__(
        self,
        *,
        default_reply: Reply = "OK",
        models: Iterable[str] = ("fake-model",),
        embedding_dim: int = 16,
        host: str = "127.0.0.1",
        port: int = 0,
        strict_tool_names: bool = True,
        context_size: int | None = None,
        report_usage: bool = True,
        backlog: int = 4096,
    ) -> None:
        self.default_reply: Reply = default_reply
        self.models = list(models)
        self.embedding_dim = embedding_dim
        self.strict_tool_names = strict_tool_names
        #: Like llama.cpp's `-c`: a prompt of more tokens (the fake's tokens are words) gets the
        #: server's 400 `exceed_context_size_error`. None: no limit.
        self.context_size = context_size
        #: False makes replies carry no token usage, as some servers do (clients must estimate).
        self.report_usage = report_usage
        self.host = host
        self._port = port
        self._backlog = backlog
        self._lock = threading.Lock()
        self._rules: list[FakeRule] = []
        self._requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:PORT` (also the Ollama base URL)."""
        if not self._port:
            raise RuntimeError("FakeLLMServer is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """OpenAI-style base URL (`.../v1`)."""
        return self.url + "/v1"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> FakeLLMServer:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        self._started.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name="FakeLLMServer", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("FakeLLMServer did not start within 10 s")
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(
                f"FakeLLMServer failed to start: {self._start_error}"
            ) from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (in-flight requests get at most ~0.1 s)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = None
            self._loop = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeLLMServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # report bind errors to the starting thread
            self._start_error = exc
            self._started.set()
            loop.close()
            self._loop = None
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        handlers = FakeHandlers(self)
        routes = (
            ("POST", "/v1/chat/completions", handlers.chat, "openai"),
            ("POST", "/v1/embeddings", handlers.embed, "openai"),
            ("GET", "/v1/models", handlers.models, "openai"),
            ("POST", "/api/chat", handlers.chat, "ollama"),
            ("POST", "/api/embed", handlers.embed, "ollama"),
            ("GET", "/api/tags", handlers.models, "ollama"),
        )
        for method, path, handler, api in routes:
            app.router.add_route(method, path, functools.partial(handler, api=api))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, backlog=self._backlog)
        await site.start()
        server = site._server
        assert server is not None
        self._server = server
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        if self._server is not None:
            await stop_accepting([self._server])
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Handlers still sleeping on a `delay` rule end here, not as "destroyed pending tasks".
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- scripting -------------------------------------------------------------------------

    def add_rule(
        self,
        match: str | None = None,
        *,
        regex: str | re.Pattern[str] | None = None,
        model: str | None = None,
        kind: str | None = None,
        reply: Reply | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        status: int | None = None,
        body: str | dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        malformed: bool = False,
        drop: bool = False,
        drop_after_chunks: int | None = None,
        times: int | None = None,
    ) -> FakeRule:
        """Add a rule (first match wins) for the last user message / embed input and model.

        `reply` may be a callable taking the request JSON; `tool_calls` items are
        `{"name": ..., "arguments": {...}}`; `status`/`body`/`headers`, `delay` (s), `malformed`,
        `drop` (close the connection) and `drop_after_chunks` (streams) inject faults;
        `times` limits how often the rule fires. Returns the rule (its `hits` count uses).
        """
        if kind not in (None, "chat", "embed"):
            raise ValueError("kind must be 'chat', 'embed' or None")
        rule = FakeRule(
            match=match,
            regex=re.compile(regex) if isinstance(regex, str) else regex,
            model=model,
            kind=kind,
            reply=reply,
            tool_calls=[dict(c) for c in tool_calls] if tool_calls else None,
            status=status,
            body=body,
            headers=dict(headers or {}),
            delay=delay,
            chunk_delay=chunk_delay,
            malformed=malformed,
            drop=drop,
            drop_after_chunks=drop_after_chunks,
            times=times,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def reply_sequence(self, replies: Iterable[str | Mapping[str, Any]]) -> list[FakeRule]:
        """Answer the next chat requests with these replies in order (each a text or rule kwargs)."""
        rules = []
        for item in replies:
            kwargs: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {"reply": item}
            kwargs.setdefault("kind", "chat")
            kwargs["times"] = 1
            rules.append(self.add_rule(**kwargs))
        return rules

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    @staticmethod
    def echo(request: dict[str, Any]) -> str:
        """A reply callable that answers with the last user message."""
        return wire.last_user_text(request.get("messages") or [])

    # --- recorded requests -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far."""
        with self._lock:
            return list(self._requests)

    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("FakeLLMServer has received no request")
            return self._requests[-1]

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Requests whose path equals `path` (e.g. '/v1/chat/completions')."""
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        """Forget recorded requests (rules stay)."""
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Poll until at least `count` requests arrived (or fail after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(got)} after {timeout} s")
            time.sleep(0.005)

    def embedding_for(self, text: str) -> list[float]:
        """The deterministic unit vector the server returns for `text`."""
        return wire.embedding(text, self.embedding_dim)

    # --- request handling: `FakeHandlers` answers, the server records and picks ---------------

    async def receive(self, request: web.Request, api: str) -> tuple[Any, RecordedRequest]:
        """Read and record one request: its JSON body (None if not JSON) and its record."""
        body, record = await read_request(request, api)
        with self._lock:
            self._requests.append(record)
        return body, record

    def pick_rule(self, kind: str, text: str, model: str) -> FakeRule | None:
        """The first rule that applies (counting the hit), or None for the default reply."""
        with self._lock:
            for rule in self._rules:
                if rule.applies(kind, text, model):
                    rule.hits += 1
                    return rule
        return None


def main(argv: list[str] | None = None) -> None:
    """Serve from the command line (e.g. in another process for benchmarks) until interrupted."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m taskengine.testing.fake_llm", description=main.__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default="OK", help="default reply text")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument(
        "--model", action="append", dest="models", help="model names to list (repeatable)"
    )
    args = parser.parse_args(argv)
    server = FakeLLMServer(
        default_reply=args.reply,
        host=args.host,
        port=args.port,
        models=args.models or ("fake-model",),
    )
    if args.delay:
        server.add_rule(delay=args.delay)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(f"FAKE_LLM_URL={server.url}", flush=True)
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
    sys.exit(0)


if __name__ == "__main__":
    main()
