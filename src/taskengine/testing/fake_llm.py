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
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aiohttp import web
from multidict import CIMultiDict

from taskengine.testing import _fake_wire as wire
from taskengine.testing._fake_wire import count_tokens

__all__ = ["FakeLLMServer", "FakeRule", "RecordedRequest", "count_tokens"]

Reply = str | Callable[[dict[str, Any]], str]


@dataclass(slots=True)
class FakeRule:
    """One scripted answer: when it applies, what it replies, and which fault it injects."""

    match: str | None = None
    regex: re.Pattern[str] | None = None
    model: str | None = None
    kind: str | None = None  # "chat", "embed" or None for both
    reply: Reply | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int | None = None
    body: str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    malformed: bool = False
    drop: bool = False
    drop_after_chunks: int | None = None
    times: int | None = None
    hits: int = 0

    def applies(self, kind: str, text: str, model: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.kind is not None and self.kind != kind:
            return False
        if self.model is not None and self.model != model:
            return False
        if self.match is not None and self.match not in text:
            return False
        return self.regex is None or self.regex.search(text) is not None


@dataclass(slots=True)
class RecordedRequest:
    """What a client sent: enough to assert on messages, tools, temperature and model."""

    method: str
    path: str
    api: str  # "openai" or "ollama"
    json: Any
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    model: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    text: str = ""
    at: float = 0.0


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
        routes = (
            ("POST", "/v1/chat/completions", self._chat, "openai"),
            ("POST", "/v1/embeddings", self._embed, "openai"),
            ("GET", "/v1/models", self._models, "openai"),
            ("POST", "/api/chat", self._chat, "ollama"),
            ("POST", "/api/embed", self._embed, "ollama"),
            ("GET", "/api/tags", self._models, "ollama"),
        )
        for method, path, handler, api in routes:
            app.router.add_route(method, path, functools.partial(handler, api=api))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, backlog=self._backlog)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
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
            kwargs = dict(item) if isinstance(item, Mapping) else {"reply": item}
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

    # --- request handling ------------------------------------------------------------------

    async def _receive(self, request: web.Request, api: str) -> tuple[Any, RecordedRequest]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            api=api,
            json=body,
            headers=CIMultiDict(request.headers),
            at=time.time(),
        )
        if isinstance(body, dict):
            messages = body.get("messages")
            options = body.get("options")
            record.model = str(body.get("model") or "")
            record.messages = list(messages) if isinstance(messages, list) else []
            record.tools = body.get("tools")
            # Ollama streams unless told otherwise; OpenAI only when asked.
            record.stream = bool(body.get("stream", api == "ollama" and isinstance(messages, list)))
            if isinstance(options, dict):
                record.temperature = options.get("temperature")
                record.max_tokens = options.get("num_predict")
            else:
                record.temperature = body.get("temperature")
                record.max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
            record.text = (
                wire.last_user_text(record.messages)
                if messages
                else "\n".join(wire.embed_inputs(body))
            )
        with self._lock:
            self._requests.append(record)
        return body, record

    def _pick(self, kind: str, text: str, model: str) -> FakeRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.applies(kind, text, model):
                    rule.hits += 1
                    return rule
        return None

    async def _fault(
        self, request: web.Request, rule: FakeRule | None, api: str, stream: bool
    ) -> web.StreamResponse | None:
        """Apply a rule's delay and faults; returns the response to send instead, if any."""
        if rule is None:
            return None
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.drop:
            _drop(request)
        if rule.status is not None and rule.status >= 400:
            body = rule.body if rule.body is not None else wire.error_body(api, rule.status)
            if isinstance(body, str):
                return web.Response(
                    status=rule.status, text=body, content_type="text/plain", headers=rule.headers
                )
            return _json(rule.status, body, headers=rule.headers)
        if rule.malformed and not stream:
            return web.Response(
                status=200, text=wire.MALFORMED_JSON, content_type="application/json"
            )
        return None

    def _reply_text(self, rule: FakeRule | None, body: dict[str, Any]) -> str:
        reply = rule.reply if rule is not None and rule.reply is not None else self.default_reply
        return str(reply(body)) if callable(reply) else str(reply)

    async def _chat(self, request: web.Request, api: str) -> web.StreamResponse:
        body, record = await self._receive(request, api)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _json(
                400, wire.error_body(api, 400, "body must be a JSON object with 'messages'")
            )
        if api == "openai" and self.strict_tool_names:
            for tool in body.get("tools") or []:
                name = str(((tool or {}).get("function") or {}).get("name", ""))
                if not wire.OPENAI_TOOL_NAME.match(name):
                    msg = f"Invalid 'tools[].function.name': {name!r} does not match '^[a-zA-Z0-9_-]{{1,64}}$'"
                    return _json(400, wire.error_body(api, 400, msg))
        if api == "openai" and self.context_size is not None:
            prompt = wire.usage(record.messages, "", [])["prompt_tokens"]
            if prompt > self.context_size:
                return _json(400, wire.context_error(prompt, self.context_size))
        rule = self._pick("chat", record.text, record.model)
        faulty = await self._fault(request, rule, api, record.stream)
        if faulty is not None:
            return faulty
        calls = wire.normalise_calls(rule.tool_calls if rule is not None else None)
        content = "" if calls else self._reply_text(rule, body)
        # Like a real server, stop at max_tokens (the fake's tokens are words) and say so.
        content, finish = wire.cut(content, record.max_tokens, "tool_calls" if calls else "stop")
        used = wire.usage(record.messages, content, calls) if self.report_usage else None
        if api == "openai":
            if not record.stream:
                return _json(
                    200, wire.openai_completion(record.model, content, calls, used, finish)
                )
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            lines = wire.openai_stream(record.model, content, calls, used, include_usage, finish)
            return await self._stream(request, rule, lines, "text/event-stream", wire.MALFORMED_SSE)
        if not record.stream:
            return _json(200, wire.ollama_chat(record.model, content, calls, used, finish))
        lines = wire.ollama_stream(record.model, content, calls, used, finish)
        return await self._stream(
            request, rule, lines, "application/x-ndjson", wire.MALFORMED_NDJSON
        )

    async def _embed(self, request: web.Request, api: str) -> web.StreamResponse:
        body, record = await self._receive(request, api)
        if not isinstance(body, dict) or "input" not in body:
            return _json(400, wire.error_body(api, 400, "body must be a JSON object with 'input'"))
        rule = self._pick("embed", record.text, record.model)
        faulty = await self._fault(request, rule, api, False)
        if faulty is not None:
            return faulty
        inputs = wire.embed_inputs(body)
        vectors = [self.embedding_for(text) for text in inputs]
        tokens = sum(wire.count_tokens(text) for text in inputs)
        if api == "openai":
            b64 = body.get("encoding_format") == "base64"
            return _json(200, wire.openai_embeddings(record.model, vectors, tokens, b64))
        return _json(200, wire.ollama_embed(record.model, vectors, tokens))

    async def _models(self, request: web.Request, api: str) -> web.StreamResponse:
        await self._receive(request, api)
        return _json(
            200,
            wire.openai_models(self.models) if api == "openai" else wire.ollama_tags(self.models),
        )

    async def _stream(
        self, request: web.Request, rule: FakeRule | None, lines: list[str], ctype: str, broken: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": ctype, "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if rule is not None and rule.malformed:
            await response.write(broken.encode())
            await response.write_eof()
            return response
        drop_at = rule.drop_after_chunks if rule is not None else None
        for index, line in enumerate(lines):
            if drop_at is not None and index >= drop_at:
                _drop(request)
            if rule is not None and rule.chunk_delay and index:
                await asyncio.sleep(rule.chunk_delay)
            await response.write(line.encode())
        await response.write_eof()
        return response


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(payload), content_type="application/json", headers=headers
    )


def _drop(request: web.Request) -> NoReturn:
    """Close the connection mid-request; the handler then ends without a response."""
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


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
