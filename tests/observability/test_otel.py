"""OpenTelemetry traces, checked at a real OTLP/HTTP receiver that decodes the protobuf.

Real parts throughout: the official OTLP exporter, `OtlpReceiver` (http.server +
opentelemetry-proto), the FakeLLMServer, a local `@hook`, a remote OpenAPI hook on loopback
with injected secrets, a SQLite run store and the HTTP server app.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from taskengine.config import RemoteHookSettings, Settings
from taskengine.hooks import default_local_hooks, hook
from taskengine.observability.otel import otel_config
from taskengine.runtime import open_runtime
from taskengine.testing.fake_llm import FakeLLMServer
from taskengine.testing.otlp import OtlpReceiver, ReceivedSpan

pytest.importorskip("opentelemetry.sdk")

SECRET_TOKEN = "sk-otel-SECRET-987"
SECRET_TENANT = "tenant-otel-secret-654"

SEARCH_DOC = {
    "openapi": "3.0.3",
    "info": {"title": "shop", "version": "1"},
    "paths": {
        "/search": {
            "get": {
                "operationId": "search",
                "parameters": [
                    {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
            }
        }
    },
}

TOOL_CHAIN = {
    "id": "shop-chat",
    "debug": True,
    "tasks": [
        {
            "id": "ask",
            "handler": "model_execution",
            "execute_config": {"model": "fake-model", "provider": "fake",
                               "hooks": ["te_otel_weather", "shop"]},
            "transition": {"branches": [
                {"operator": "equals", "when": "tool-call", "goto": "run_tools"},
                {"operator": "default", "goto": "end"},
            ]},
        },
        {
            "id": "run_tools",
            "handler": "execute_tool_calls",
            "input_var": "ask",
            "transition": {"branches": [{"operator": "default", "goto": "ask"}]},
        },
    ],
}  # fmt: skip


class ShopApi:
    """A loopback OpenAPI service recording the headers of every call."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/shop/openapi.json", self._doc)
        app.router.add_get("/shop/search", self._search)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}/shop"

    async def _doc(self, _request: web.Request) -> web.Response:
        return web.json_response(SEARCH_DOC)

    async def _search(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        return web.json_response({"items": [request.query["q"]], "tenant": SECRET_TENANT})


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rec:
        yield rec


@pytest.fixture
async def shop() -> AsyncIterator[ShopApi]:
    api = ShopApi()
    await api.start()
    yield api
    assert api.runner is not None
    await api.runner.cleanup()


@pytest.fixture
def weather_hook() -> Iterator[None]:
    @hook("te_otel_weather")
    def get_forecast(city: str) -> dict:
        """Forecast for a city.

        Args:
            city: City name.
        """
        return {"city": city, "sky": "clear"}

    yield
    default_local_hooks().unregister("te_otel_weather")


def settings_dict(receiver: OtlpReceiver, llm: FakeLLMServer, **otel: Any) -> dict[str, Any]:
    return {
        "providers": [{"name": "fake", "base_url": llm.openai_base_url, "timeout": 5}],
        "default_provider": "fake",
        "default_model": "fake-model",
        "retry": {"base": 0.001, "max": 0.002},
        "otel": {"endpoint": receiver.url, "service_name": "otel-test", **otel},
    }


def settings_for(receiver: OtlpReceiver, llm: FakeLLMServer, **otel: Any) -> Settings:
    return Settings.model_validate(settings_dict(receiver, llm, **otel))


def by_name(spans: list[ReceivedSpan], prefix: str) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.name.startswith(prefix)), key=lambda s: s.start_ns)


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted(
        (s for s in spans if s.parent_span_id == parent.span_id), key=lambda s: s.start_ns
    )


async def test_span_tree_of_a_tool_calling_run(
    receiver: OtlpReceiver, shop: ShopApi, weather_hook: None
) -> None:
    async with FakeLLMServer() as llm:
        llm.reply_sequence([
            {"tool_calls": [
                {"name": "te_otel_weather__get_forecast", "arguments": {"city": "Oslo"}},
                {"name": "shop__search", "arguments": {"q": "umbrella"}},
            ]},
            {"reply": f"Take an umbrella (my key is {SECRET_TOKEN})"},
        ])  # fmt: skip
        settings = settings_for(receiver, llm, capture_content=True)
        settings = settings.model_copy(update={"remote_hooks": [RemoteHookSettings(
            name="shop", url=shop.base,
            headers={"Authorization": f"Bearer {SECRET_TOKEN}"},
            inject_body={"tenant_id": SECRET_TENANT}, timeout=5,
        )]})  # fmt: skip
        async with await open_runtime(settings, use_store=False, environ={}) as runtime:
            result = await runtime.env.exec_env(TOOL_CHAIN, "What to wear in Oslo?")
    assert result.status == "succeeded", result.error
    spans = receiver.snapshot()  # closing the runtime flushed the exporter

    [root] = by_name(spans, "invoke_agent")
    assert root.name == "invoke_agent shop-chat"
    assert root.trace_id == result.run_id  # the run id is the trace id
    assert root.parent_span_id == ""
    assert root.service_name == "otel-test"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["taskengine.run_id"] == result.run_id
    assert root.attributes["taskengine.chain_id"] == "shop-chat"
    assert root.attributes["taskengine.status"] == "succeeded"
    assert root.attributes["gen_ai.usage.input_tokens"] == result.totals["input_tokens"]
    assert {s.trace_id for s in spans} == {root.trace_id}

    steps = children(spans, root)
    assert [s.name for s in steps] == ["task ask", "task run_tools", "task ask"]
    assert [s.attributes["taskengine.transition"] for s in steps] == [
        "tool-call", "tools_executed", "executed",
    ]  # fmt: skip
    assert all(s.attributes["taskengine.attempt"] == 1 for s in steps)

    (first_call,) = children(spans, steps[0])
    assert first_call.name == "chat fake-model"
    assert first_call.kind == 3  # SPAN_KIND_CLIENT
    assert first_call.attributes["gen_ai.operation.name"] == "chat"
    assert first_call.attributes["gen_ai.provider.name"] == "fake"
    assert first_call.attributes["gen_ai.request.model"] == "fake-model"
    assert first_call.attributes["gen_ai.response.model"] == "fake-model"
    assert first_call.attributes["gen_ai.usage.input_tokens"] > 0
    assert first_call.attributes["gen_ai.usage.output_tokens"] >= 0

    tools = children(spans, steps[1])
    assert [t.attributes["gen_ai.tool.name"] for t in tools] == [
        "te_otel_weather.get_forecast", "shop.search",
    ]  # fmt: skip
    assert all(t.attributes["gen_ai.operation.name"] == "execute_tool" for t in tools)
    assert all(t.attributes["gen_ai.tool.call.id"] for t in tools)

    # the remote hook call carried the tool span as its parent
    [sent] = shop.headers
    version, trace_id, parent_id, _flags = sent["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", root.trace_id, tools[1].span_id)

    # content was captured (redacted): the secret the model echoed and the injected one are masked
    assert "umbrella" in steps[2].attributes["taskengine.step.output"]
    everything = json.dumps([s.attributes for s in spans]) + json.dumps(
        [s.status_message for s in spans]
    )
    assert SECRET_TOKEN not in everything
    assert SECRET_TENANT not in everything


async def test_retries_are_one_span_per_attempt_and_content_is_off_by_default(
    receiver: OtlpReceiver,
) -> None:
    chain = {
        "id": "flaky",
        "debug": True,
        "tasks": [{
            "id": "rate", "handler": "parse_number", "prompt_template": "Rate {{ input }}",
            "retry_on_failure": 1,
            "transition": {"branches": [{"operator": "default", "goto": "end"}]},
        }],
    }  # fmt: skip
    async with FakeLLMServer() as llm:
        llm.add_rule(match="Rate", status=500, times=1)
        llm.add_rule(match="Rate", reply="7")
        settings = settings_for(receiver, llm)
        async with await open_runtime(settings, use_store=False, environ={}) as runtime:
            result = await runtime.env.exec_env(chain, "the private diary of Ann")
    assert result.output == 7
    spans = receiver.snapshot()
    [root] = by_name(spans, "invoke_agent")
    first, second = children(spans, root)
    assert (first.attributes["taskengine.attempt"], second.attributes["taskengine.attempt"]) == (
        1,
        2,
    )
    assert first.status_code == 2 and first.attributes["error.type"]
    assert second.status_code != 2
    [failed_call] = children(spans, first)
    assert failed_call.status_code == 2
    assert "gen_ai.response.model" not in failed_call.attributes
    assert "private diary" not in json.dumps([s.attributes for s in spans])


async def test_resumed_run_links_to_its_earlier_attempt(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    chain = {
        "id": "two-steps",
        "tasks": [
            {"id": "first", "handler": "raw_string", "prompt_template": "one {{ input }}",
             "transition": {"branches": [{"operator": "default", "goto": "second"}]}},
            {"id": "second", "handler": "raw_string", "prompt_template": "two",
             "transition": {"branches": [{"operator": "default", "goto": "end"}]}},
        ],
    }  # fmt: skip
    async with FakeLLMServer(default_reply="fine") as llm:
        settings = settings_for(receiver, llm).model_copy(
            update={"db": f"sqlite:///{tmp_path / 'runs.db'}"}
        )
        async with await open_runtime(settings, environ={}) as runtime:
            paused = await runtime.env.exec_env(chain, "x", breakpoints=["second"])
            assert paused.status == "paused"
            done = await runtime.env.resume(paused.run_id)
    assert done.status == "succeeded"
    spans = receiver.snapshot()
    earlier, later = by_name(spans, "invoke_agent")
    assert earlier.attributes["taskengine.status"] == "paused"
    assert later.attributes["taskengine.status"] == "succeeded"
    assert earlier.trace_id == later.trace_id == paused.run_id
    assert later.links == [(earlier.trace_id, earlier.span_id)]
    assert later.attributes["taskengine.resumed"] is True
    assert [s.name for s in children(spans, earlier)] == ["task first"]
    assert [s.name for s in children(spans, later)] == ["task second"]


THREE_STEPS = {
    "id": "three-steps",
    "tasks": [
        {"id": "first", "handler": "raw_string", "prompt_template": "one {{ input }}",
         "transition": {"branches": [{"operator": "default", "goto": "second"}]}},
        {"id": "second", "handler": "raw_string", "prompt_template": "two",
         "transition": {"branches": [{"operator": "default", "goto": "third"}]}},
        {"id": "third", "handler": "raw_string", "prompt_template": "three",
         "transition": {"branches": [{"operator": "default", "goto": "end"}]}},
    ],
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    dsn = request.getfixturevalue("pg_dsn")
    return f"{dsn}?schema={request.getfixturevalue('pg_schema')}"


async def resume_in_a_new_process(run_id: str, config: Path, db_url: str) -> dict[str, Any]:
    """`taskengine resume RUN --json` as a user runs it, in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(TASKENGINE_DB=db_url, HOME=str(config.parent))
    env.pop("TASKENGINE_SECRET_KEY", None)
    exe = Path(sys.executable).with_name("taskengine")
    proc = await asyncio.create_subprocess_exec(
        str(exe), "resume", run_id, "--json", "--config", str(config),
        env=env, cwd=config.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_resumes_in_other_processes_link_to_every_earlier_attempt(
    receiver: OtlpReceiver, tmp_path: Path, db_url: str
) -> None:
    from taskengine.store import open_store

    async with FakeLLMServer(default_reply="fine") as llm:
        config = tmp_path / "taskengine.yaml"
        config.write_text(json.dumps(settings_dict(receiver, llm)))
        settings = settings_for(receiver, llm).model_copy(update={"db": db_url})
        async with await open_runtime(settings, environ={}) as runtime:
            paused = await runtime.env.exec_env(THREE_STEPS, "x", breakpoints=["second", "third"])
        assert paused.status == "paused"
        # Each resume is a new process that never saw the attempts before it.
        again = await resume_in_a_new_process(paused.run_id, config, db_url)
        assert again["status"] == "paused"
        assert [step["taskID"] for step in again["state"]] == ["first", "second"]
        done = await resume_in_a_new_process(paused.run_id, config, db_url)
        assert done["status"] == "succeeded"
    roots = by_name(receiver.snapshot(), "invoke_agent")
    assert [r.attributes["taskengine.status"] for r in roots] == ["paused", "paused", "succeeded"]
    first, second, third = roots
    assert first.trace_id == second.trace_id == third.trace_id == paused.run_id
    assert first.links == [] and first.attributes["taskengine.resumed"] is False
    assert second.links == [(first.trace_id, first.span_id)]
    assert third.links == [(r.trace_id, r.span_id) for r in (first, second)]
    assert second.attributes["taskengine.resumed"] is third.attributes["taskengine.resumed"] is True
    # The run record keeps the root spans (ids and flags only).
    store = await open_store(db_url)
    try:
        meta = (await store.get_run(paused.run_id)).meta
    finally:
        await store.aclose()
    assert set(meta) == {"breakpoints", "attemptSpans"}
    kept = meta["attemptSpans"]
    assert [(k["traceId"], k["spanId"]) for k in kept] == [(r.trace_id, r.span_id) for r in roots]
    assert all(set(k) == {"traceId", "spanId", "traceFlags"} and k["traceFlags"] & 1 for k in kept)


async def test_sampled_out_attempts_are_not_kept_and_damaged_ones_not_linked(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    from taskengine.store import open_store

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    kept = {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7"}
    async with FakeLLMServer(default_reply="fine") as llm:
        quiet = settings_for(receiver, llm, sample_ratio=0.0).model_copy(update={"db": db})
        async with await open_runtime(quiet, environ={}) as runtime:
            paused = await runtime.env.exec_env(THREE_STEPS, "x", breakpoints=["second"])
        store = await open_store(db)
        try:
            assert "attemptSpans" not in (await store.get_run(paused.run_id)).meta
            for entry in (
                "text",
                {"traceId": "not hex", "spanId": "00f067aa0ba902b7"},
                {"spanId": "00f067aa0ba902b7"},
                {"traceId": "0" * 32, "spanId": "0" * 16, "traceFlags": 1},
                {**kept, "traceFlags": 1},
            ):
                await store.append_meta(paused.run_id, "attemptSpans", entry, keep=16)
        finally:
            await store.aclose()
        loud = settings_for(receiver, llm).model_copy(update={"db": db})
        async with await open_runtime(loud, environ={}) as runtime:
            done = await runtime.env.resume(paused.run_id)
    assert done.status == "succeeded"
    [root] = by_name(receiver.snapshot(), "invoke_agent")  # the first attempt was sampled out
    assert root.links == [(kept["traceId"], kept["spanId"])]
    assert root.attributes["taskengine.resumed"] is True


async def test_server_continues_the_callers_traceparent(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    from taskengine.server import create_app

    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller_span = "00f067aa0ba902b7"
    async with FakeLLMServer(default_reply="hi") as llm:
        settings = settings_for(receiver, llm).model_copy(
            update={"db": f"sqlite:///{tmp_path / 'server.db'}", "kv": "memory://"}
        )
        app = create_app(settings, environ={})
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://te") as client:
                chain = {"id": "greet", "tasks": [{
                    "id": "hello", "handler": "raw_string", "prompt_template": "hi",
                    "transition": {"branches": [{"operator": "default", "goto": "end"}]},
                }]}  # fmt: skip
                reply = await client.post(
                    "/tasks",
                    json={"chain": chain, "input": "x"},
                    headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
                )
                assert reply.status_code == 200, reply.text
    [root] = by_name(receiver.snapshot(), "invoke_agent")
    assert (root.trace_id, root.parent_span_id) == (caller_trace, caller_span)


def test_nothing_is_exported_unless_asked() -> None:
    assert otel_config(Settings(), {}) is None
    assert otel_config(Settings(), {"OTEL_SERVICE_NAME": "x"}) is None
    assert otel_config(Settings(), {"OTEL_TRACES_EXPORTER": "none"}) is None
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert otel_config(Settings(), {**on, "OTEL_SDK_DISABLED": "true"}) is None
    off_in_file = Settings.model_validate({"otel": {"enabled": False}})
    assert otel_config(off_in_file, on) is None


def test_standard_variables_configure_the_exporter() -> None:
    config = otel_config(Settings(), {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_SERVICE_NAME": "router",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
    })  # fmt: skip
    assert config is not None
    assert config.endpoint == "http://collector:4318/v1/traces"
    assert (config.service_name, config.sample_ratio, config.capture_content) == (
        "router", 0.25, True,
    )  # fmt: skip
    exact = otel_config(Settings(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:1/t"})
    assert exact is not None and exact.endpoint == "http://c:1/t"
    from_file = otel_config(Settings.model_validate({"otel": {"enabled": True}}), {})
    assert from_file is not None and from_file.endpoint == "http://localhost:4318/v1/traces"


def test_a_bad_sampler_argument_is_a_config_error() -> None:
    from taskengine.errors import ConfigError

    with pytest.raises(ConfigError, match="OTEL_TRACES_SAMPLER_ARG"):
        otel_config(Settings(), {"OTEL_TRACES_EXPORTER": "otlp",
                                 "OTEL_TRACES_SAMPLER": "traceidratio",
                                 "OTEL_TRACES_SAMPLER_ARG": "lots"})  # fmt: skip
