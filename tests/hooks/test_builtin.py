"""The built-in `echo` and allow-listed `http` hooks (against the loopback server)."""

from __future__ import annotations

from typing import Any

import pytest

from taskengine.chain import HookCall
from taskengine.datatypes import ChatHistory, DataType, Message
from taskengine.errors import HookError
from taskengine.hooks import BuiltinHooks, HookContext

from .fakeapi import FakeApi

CTX = HookContext(run_id="r", task_id="fetch", attempt=1, step=3)


async def http(
    hooks: BuiltinHooks, args: dict[str, str], ctx: HookContext = CTX
) -> tuple[Any, DataType]:
    return await hooks.exec(
        HookCall(name="http", args=args), input=None, input_type=DataType.NIL, context=ctx
    )


async def test_echo_returns_input_with_its_type_or_text() -> None:
    async with BuiltinHooks() as hooks:
        history = ChatHistory(messages=[Message(role="user", content="hi")])
        out = await hooks.exec(
            HookCall(name="echo"), input=history, input_type=DataType.CHAT_HISTORY, context=CTX
        )
        assert out == (history, DataType.CHAT_HISTORY)
        out = await hooks.exec(
            HookCall(name="echo", args={"text": "override"}),
            input=1,
            input_type=DataType.INT,
            context=CTX,
        )
        assert out == ("override", DataType.STRING)
        [tool] = await hooks.get_tools_for_hook_by_name("echo")
        assert tool.function.name == "echo.echo" and set(
            tool.function.parameters["properties"]
        ) == {"text"}


async def test_http_calls_allowed_hosts_and_types_the_response(api: FakeApi) -> None:
    async with BuiltinHooks(allowed_hosts=["127.0.0.1"]) as hooks:
        out, kind = await http(hooks, {"url": f"{api.base}/v30/things?x=1"})
        assert kind is DataType.JSON and out["query"] == {"x": "1"}
        out, kind = await http(
            hooks,
            {
                "url": f"{api.base}/v30/things",
                "method": "post",
                "body": '{"a": 1}',
                "headers": '{"X-Trace": "t1"}',
            },
        )
        assert out["method"] == "POST" and out["body"] == {"a": 1}
        text, kind = await http(hooks, {"url": f"{api.base}/v30/text"})
        assert (text, kind) == ("<html>hello</html>", DataType.STRING)
        home, _ = await http(hooks, {"url": f"{api.base}/v30/redirect-home"})
        assert home == "hello there"
        with pytest.raises(HookError) as failed:
            await http(hooks, {"url": f"{api.base}/v30/fail500"})
    posted = api.calls[1]
    assert (
        posted.headers["X-Trace"] == "t1" and posted.headers["Content-Type"] == "application/json"
    )
    assert posted.headers["Idempotency-Key"] == "r:fetch:3"
    assert "HTTP 500" in str(failed.value) and (failed.value.hook, failed.value.tool) == (
        "http",
        "request",
    )


async def test_http_refuses_hosts_off_the_allow_list(api: FakeApi) -> None:
    async with BuiltinHooks() as closed:
        with pytest.raises(HookError, match="no hosts are allowed"):
            await http(closed, {"url": f"{api.base}/v30/things"})
    async with BuiltinHooks(allowed_hosts=["127.0.0.1"]) as hooks:
        with pytest.raises(HookError, match="not on the allow-list"):
            await http(hooks, {"url": f"http://localhost:{api.port}/v30/things"})
        # a redirect cannot smuggle the request to another host
        with pytest.raises(HookError, match=r"localhost:\d+/v30/ping is not on the allow-list"):
            await http(hooks, {"url": f"{api.base}/v30/redirect-away"})
        with pytest.raises(HookError, match="unsupported method"):
            await http(hooks, {"url": f"{api.base}/v30/things", "method": "BREW"})
    assert [c.path for c in api.calls] == ["/redirect-away"]


async def test_http_timeout(api: FakeApi) -> None:
    async with BuiltinHooks(allowed_hosts=["127.0.0.1"], timeout=5) as hooks:
        with pytest.raises(HookError, match=r"timed out after 0\.2s"):
            await http(hooks, {"url": f"{api.base}/v30/slow"}, HookContext(timeout=0.2))


def test_allow_list_matching() -> None:
    hooks = BuiltinHooks(allowed_hosts=["api.example.com", "*.corp.test", "svc.local:8443"])
    assert hooks.host_allowed("https://api.example.com/x")
    assert hooks.host_allowed("https://API.example.com:9000/x")  # no port in the entry: any port
    assert hooks.host_allowed("http://a.b.corp.test/")
    assert not hooks.host_allowed("http://corp.test/")
    assert not hooks.host_allowed("http://evilapi.example.com/")
    assert hooks.host_allowed("https://svc.local:8443/")
    assert not hooks.host_allowed("https://svc.local/")
    assert not hooks.host_allowed("file:///etc/passwd")
    assert BuiltinHooks(allowed_hosts=["*"]).host_allowed("http://anything/")
