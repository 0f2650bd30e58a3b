"""MCP servers as a tool source: real SDK servers in subprocesses (stdio) and over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time

import pytest

from taskengine.chain import HookCall
from taskengine.config import Settings
from taskengine.datatypes import ChatHistory, DataType
from taskengine.errors import HookError
from taskengine.hooks.base import HookContext
from taskengine.mcp.connection import McpConnectionLost
from taskengine.mcp.settings import McpServerSettings
from taskengine.mcp.tools import IDEMPOTENCY_META_KEY, McpHookRepo
from taskengine.providers.config import ProviderConfig
from taskengine.runtime import open_runtime
from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import DEMO_SERVER, SUFFIX_SECRET


def demo(**extra) -> McpServerSettings:
    return McpServerSettings(name="demo", command=[sys.executable, DEMO_SERVER], **extra)


@pytest.fixture(params=["stdio", "http"])
def demo_server(request: pytest.FixtureRequest):
    """Settings of the demo server, over stdio or streamable HTTP.

    Either way the server appends SUFFIX_SECRET to its answers and that value is configured as a
    secret (an env value for stdio, a header value for HTTP), so taskengine must mask it.
    """

    def make(**extra) -> McpServerSettings:
        if request.param == "stdio":
            return demo(env={"DEMO_TOKEN": SUFFIX_SECRET}, **extra)
        url = request.getfixturevalue("demo_http_url")
        return McpServerSettings(name="demo", url=url, headers={"X-Key": SUFFIX_SECRET}, **extra)

    return make


async def call(repo: McpHookRepo, tool: str, args: dict | None = None, **ctx) -> object:
    output, _type = await repo.exec(
        HookCall(name="demo", tool_name=tool),
        input=None,
        input_type=DataType.NIL,
        context=HookContext(run_id="r1", task_id="t", step=1, **ctx),
        args=args or {},
    )
    return output


async def wait_until(predicate, seconds: float = 15.0) -> None:
    import asyncio

    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.02)


TOOL_LOOP = {
    "id": "mcp-chat",
    "tasks": [
        {
            "id": "ask",
            "handler": "model_execution",
            "execute_config": {
                "model": "fake-model",
                "provider": "fake",
                "hooks": ["demo"],
                "hide_tools": ["crash", "slow", "grow", "getenv", "demo.whoami"],
            },
            "transition": {
                "branches": [
                    {"operator": "equals", "when": "tool-call", "goto": "tools"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        },
        {
            "id": "tools",
            "handler": "execute_tool_calls",
            "input_var": "ask",
            "transition": {"branches": [{"operator": "default", "goto": "ask"}]},
        },
    ],
}


def answer_from_tools(request: dict) -> str:
    return "Tools said: " + " | ".join(
        m["content"] for m in request["messages"] if m["role"] == "tool"
    )


async def test_model_calls_mcp_tools_through_the_tool_loop(demo_server) -> None:
    async with FakeLLMServer() as llm:
        llm.reply_sequence(
            [
                {
                    "tool_calls": [
                        {"name": "demo__add", "arguments": {"a": 2, "b": 3}},
                        {"name": "demo__shout", "arguments": {"text": "hi"}},
                        {"name": "demo__add", "arguments": {"a": "two", "b": 3}},
                        {"name": "demo__fail", "arguments": {"reason": "no"}},
                    ]
                },
                {"reply": answer_from_tools},
            ]
        )
        settings = Settings(
            providers=[ProviderConfig(name="fake", base_url=llm.openai_base_url)],
            mcp_servers=[demo_server()],
        )
        async with await open_runtime(settings, use_store=False) as runtime:
            result = await runtime.env.exec_env(TOOL_LOOP, "What is 2+3?", DataType.STRING)
        first = llm.requests_for("/v1/chat/completions")[0]

    assert result.status == "succeeded", result.error
    assert [u.task_id for u in result.state] == ["ask", "tools", "ask"]
    offered = {t["function"]["name"]: t["function"] for t in first.tools or []}
    assert sorted(offered) == ["demo__add", "demo__fail", "demo__shout"]  # hide_tools applied
    assert offered["demo__add"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert isinstance(result.output, ChatHistory)
    tool_texts = [m.content for m in result.output.messages if m.role == "tool"]
    assert tool_texts[0] == "5"
    assert tool_texts[1] == "HI***"  # a configured secret: masked before the model sees it
    assert (
        "invalid arguments" in tool_texts[2] and "'two' is not of type 'integer'" in tool_texts[2]
    )
    assert result.output.messages[-1].content.startswith("Tools said: 5 | HI***")
    assert SUFFIX_SECRET not in json.dumps(result.to_dict())


async def test_a_hook_task_calls_an_mcp_tool_directly(demo_server) -> None:
    chain = {
        "id": "direct",
        "debug": True,  # record each step's output in the state
        "tasks": [
            {
                "id": "sum",
                "handler": "hook",
                "hook": {
                    "name": "demo",
                    "tool_name": "add",
                    "args": {"a": "{{ .input }}", "b": "4"},
                },
                "transition": {"branches": [{"operator": "default", "goto": "who"}]},
            },
            {"id": "who", "handler": "hook", "hook": {"name": "demo", "tool_name": "whoami"}},
        ],
    }
    settings = Settings(mcp_servers=[demo_server()])
    async with await open_runtime(settings, use_store=False) as runtime:
        result = await runtime.env.exec_env(chain, "3", DataType.STRING)
    assert result.status == "succeeded", result.error
    summed = result.state[0]
    assert (summed.output, summed.output_type, summed.transition) == ("7", DataType.INT, "ok")
    who = result.output
    assert who["meta"][IDEMPOTENCY_META_KEY] == f"{result.run_id}:who:2"


async def test_arguments_are_validated_before_the_call() -> None:
    async with McpHookRepo([demo()]) as repo:
        with pytest.raises(HookError) as err:
            await call(repo, "add", {"a": 1})
        assert "MCP server 'demo' tool 'add': invalid arguments" in err.value.message
        assert "'b' is a required property" in err.value.message
        with pytest.raises(HookError, match="nope: is not a parameter of this tool"):
            await call(repo, "add", {"a": 1, "b": 2, "nope": 3})
        with pytest.raises(HookError, match="has no tool 'ad' \\(did you mean 'add'"):
            await call(repo, "ad", {})
        with pytest.raises(HookError, match=r"tool 'fail' failed: .*broken on purpose"):
            await call(repo, "fail", {"reason": "broken on purpose"})
        assert await call(repo, "add", {"a": 1, "b": 2}) == 3  # the session survived all that


async def test_a_crashed_server_is_started_again() -> None:
    async with McpHookRepo([demo()]) as repo:
        first = await call(repo, "whoami")
        conn = repo.connection("demo")
        os.kill(first["pid"], signal.SIGKILL)
        await wait_until(lambda: not conn.alive)  # its stdout closed: the crash is noticed

        second = await call(repo, "whoami")
        assert second["pid"] != first["pid"]
        assert conn.starts == 2

        with pytest.raises(McpConnectionLost) as err:  # dies in the middle of a call
            await call(repo, "crash")
        assert "MCP server 'demo' tool 'crash'" in err.value.message
        assert "exited" in err.value.message
        assert (err.value.hook, err.value.tool) == ("demo", "crash")
        assert await call(repo, "add", {"a": 20, "b": 22}) == 42
        assert conn.starts == 3


async def test_a_slow_tool_times_out_and_the_session_survives(demo_server) -> None:
    async with McpHookRepo([demo_server(timeout=0.5)]) as repo:
        assert await call(repo, "add", {"a": 1, "b": 1}) == 2  # started outside the timing
        started = time.monotonic()
        with pytest.raises(HookError) as err:
            await call(repo, "slow", {"seconds": 30})
        assert time.monotonic() - started < 5
        assert err.value.message == "MCP server 'demo' tool 'slow': timed out after 0.5s"
        # the step's own (shorter) timeout wins over the server's
        with pytest.raises(HookError, match=r"timed out after 0\.2s"):
            await call(repo, "slow", {"seconds": 30}, timeout=0.2)
        assert await call(repo, "add", {"a": 2, "b": 2}) == 4


async def test_a_server_that_cannot_start_is_a_clear_error() -> None:
    missing = McpServerSettings(name="ghost", command=["/nonexistent/mcp-server"])
    quitter = McpServerSettings(
        name="quitter",
        command=[sys.executable, "-c", "import sys; sys.exit(2)"],
        connect_timeout=10,
    )
    async with McpHookRepo([missing, quitter]) as repo:
        with pytest.raises(
            HookError, match="MCP server 'ghost': cannot start '/nonexistent/mcp-server'"
        ):
            await repo.get_tools_for_hook_by_name("ghost")
        started = time.monotonic()
        with pytest.raises(HookError, match="MCP server 'quitter'"):
            await repo.get_tools_for_hook_by_name("quitter")
        assert time.monotonic() - started < 10
        with pytest.raises(HookError) as err:  # a call names the tool it wanted, too
            await repo.exec(
                HookCall(name="ghost", tool_name="lookup"),
                input=None,
                input_type=DataType.NIL,
                context=HookContext(),
            )
        assert err.value.message.startswith(
            "MCP server 'ghost' tool 'lookup': cannot start '/nonexistent/mcp-server'"
        )
        assert (err.value.hook, err.value.tool) == ("ghost", "lookup")
        schemas = await repo.get_schemas_for_supported_hooks()
        assert schemas["ghost"]["kind"] == "mcp" and "cannot start" in schemas["ghost"]["error"]


async def test_an_http_server_gets_the_configured_headers(demo_http_url: str) -> None:
    token = "tok-0123456789abcdef"
    server = McpServerSettings(
        name="demo", url=demo_http_url, headers={"Authorization": f"Bearer {token}"}
    )
    async with McpHookRepo([server]) as repo:
        tools = await repo.get_tools_for_hook_by_name("demo")
        assert "demo.add" in {t.function.name for t in tools}
        assert await call(repo, "add", {"a": 40, "b": 2}) == 42
        who = await call(repo, "whoami")
    assert who["auth_sha256"] == hashlib.sha256(f"Bearer {token}".encode()).hexdigest()
    assert who["meta"][IDEMPOTENCY_META_KEY] == "r1:t:1"


async def test_sessions_are_shared_within_the_process_and_closed_by_the_last_user() -> None:
    one, two = McpHookRepo([demo()]), McpHookRepo([demo()])
    assert one.connection("demo") is two.connection("demo")
    pid = (await call(one, "whoami"))["pid"]
    assert (await call(two, "whoami"))["pid"] == pid  # one process serves both
    conn = one.connection("demo")
    await one.aclose()
    assert conn.alive
    await two.aclose()
    assert not conn.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the server process is gone (and reaped)


async def test_an_http_server_that_goes_away_is_a_clear_error_then_reconnected(tmp_path) -> None:
    import subprocess

    from .conftest import free_port, stop, wait_for_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    server = McpServerSettings(name="demo", url=url, timeout=5, connect_timeout=5)

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, DEMO_SERVER, "--http", str(port)], stderr=subprocess.DEVNULL
        )
        wait_for_port(port, proc)
        return proc

    async with McpHookRepo([server]) as repo:
        with pytest.raises(HookError, match="MCP server 'demo' tool 'add': cannot connect"):
            await call(repo, "add", {"a": 1, "b": 2})  # nothing listens yet
        proc = start()
        try:
            assert await call(repo, "add", {"a": 1, "b": 2}) == 3
        finally:
            stop(proc)
        with pytest.raises(McpConnectionLost, match=r"MCP server 'demo' tool 'add': .*reconnected"):
            await call(repo, "add", {"a": 1, "b": 2})
        proc = start()
        try:
            assert await call(repo, "add", {"a": 2, "b": 2}) == 4
        finally:
            stop(proc)


async def test_a_server_that_never_answers_the_handshake_times_out() -> None:
    mute = McpServerSettings(
        name="mute",
        command=[sys.executable, "-c", "import time; time.sleep(60)"],
        connect_timeout=0.5,
    )
    async with McpHookRepo([mute]) as repo:
        started = time.monotonic()
        with pytest.raises(HookError) as err:
            await repo.get_tools_for_hook_by_name("mute")
        assert err.value.message == "MCP server 'mute': no answer to the MCP handshake within 0.5s"
        assert time.monotonic() - started < 10  # includes stopping the process
        assert not repo.connection("mute").alive


async def test_the_tool_list_is_listed_again_after_its_ttl() -> None:
    async with McpHookRepo([demo(tools_ttl=0)]) as fresh, McpHookRepo([demo()]) as cached:
        before = {t.function.name for t in await cached.get_tools_for_hook_by_name("demo")}
        assert "demo.extra" not in before
        assert fresh.connection("demo") is cached.connection("demo")  # one server process
        assert await call(fresh, "grow") == "grown"
        names = {t.function.name for t in await fresh.get_tools_for_hook_by_name("demo")}
        assert "demo.extra" in names
        assert await call(fresh, "extra") == "extra!"
        still = {t.function.name for t in await cached.get_tools_for_hook_by_name("demo")}
        assert still == before  # within its ttl (default 300 s) the listing is reused
