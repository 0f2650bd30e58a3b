"""The composite registry, tool exposure for model tasks, and the shared small types."""

from __future__ import annotations

from typing import Any

import pytest

from taskengine.chain import HookCall, LLMExecutionConfig
from taskengine.datatypes import DataType, FunctionTool, Tool
from taskengine.errors import HookError
from taskengine.hooks import (
    HookContext,
    HookRegistry,
    HookRepo,
    LocalHookRegistry,
    resolve_task_tools,
    resolve_tool_name,
    tools_for_task,
)


def local(*names: str, tools: tuple[str, ...] = ("run",)) -> LocalHookRegistry:
    reg = LocalHookRegistry()
    for name in names:
        for tool in tools:
            reg.register(name, lambda _n=name, _t=tool: f"{_n}.{_t}", name=tool, blocking=False)
    return reg


class AsyncOnlyRepo:
    """A third-party provider that only implements the protocol (no sync `hook_names`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def exec(self, call, *, input, input_type, context, args=None) -> tuple[Any, DataType]:
        return f"{self.name} ran {call.tool_name}", DataType.STRING

    async def supports(self) -> list[str]:
        return [self.name]

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]:
        return {self.name: {"kind": "custom", "tools": []}}

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]:
        return [Tool(function=FunctionTool(name=f"{name}.ping"))]


async def run(registry, name: str, tool: str = "") -> tuple[Any, DataType]:
    return await registry.exec(
        HookCall(name=name, tool_name=tool),
        input=None,
        input_type=DataType.NIL,
        context=HookContext(),
    )


async def test_routes_each_hook_to_its_provider() -> None:
    first, second = local("a", "b"), local("c")
    registry = HookRegistry(first, second, AsyncOnlyRepo("custom"))
    assert isinstance(registry, HookRepo) and isinstance(first, HookRepo)
    assert await run(registry, "b") == ("b.run", DataType.STRING)
    assert await run(registry, "c") == ("c.run", DataType.STRING)
    assert await run(registry, "custom", "x") == ("custom ran x", DataType.STRING)
    assert await registry.supports() == ["a", "b", "c", "custom"]
    assert set(await registry.get_schemas_for_supported_hooks()) == {"a", "b", "c", "custom"}
    # a hook registered after composition is found too
    first.register("late", lambda: "late", blocking=False)
    assert await run(registry, "late") == ("late", DataType.STRING)


async def test_duplicate_hook_names_fail_at_construction_and_registration() -> None:
    with pytest.raises(HookError, match="hook 'b' is provided twice"):
        HookRegistry(local("a", "b"), local("b"))
    registry = HookRegistry(local("a"))
    with pytest.raises(HookError, match="provided twice"):
        registry.add(local("a"))
    assert len(registry.providers) == 1 and await run(registry, "a") == ("a.run", DataType.STRING)
    clash = HookRegistry(local("custom"), AsyncOnlyRepo("custom"))
    with pytest.raises(HookError, match="provided twice"):
        await clash.supports()


async def test_unknown_hook_lists_known_ones_with_a_suggestion() -> None:
    registry = HookRegistry(local("weather", "slack"))
    with pytest.raises(HookError) as info:
        await run(registry, "wheather")
    assert (
        str(info.value)
        == "unknown hook 'wheather' (did you mean 'weather'?); known: slack, weather"
    )
    assert info.value.hook == "wheather"


async def test_tools_for_task_hide_tools_and_client_tools() -> None:
    registry = HookRegistry(
        local("weather", tools=("forecast", "alerts", "radar")), local("mail", tools=("send",))
    )
    config = LLMExecutionConfig(
        hooks=["weather", "mail", "weather"], hide_tools=["alerts", "weather.radar"]
    )
    client = [
        Tool(function=FunctionTool(name="client_lookup")),
        Tool(function=FunctionTool(name="hidden_one")),
    ]
    names = [t.function.name for t in await tools_for_task(registry, config, client)]
    assert names == ["weather.forecast", "mail.send"]  # client tools only when pass_clients_tools
    passing = config.model_copy(
        update={"pass_clients_tools": True, "hide_tools": ["alerts", "weather.radar", "hidden_one"]}
    )
    resolved = await resolve_task_tools(registry, passing, client)
    assert list(resolved) == ["weather.forecast", "mail.send", "client_lookup"]
    assert (resolved["mail.send"].hook_name, resolved["mail.send"].tool_name) == ("mail", "send")
    assert resolved["client_lookup"].is_client_tool and not resolved["mail.send"].is_client_tool
    assert await tools_for_task(registry, None, client) == []
    assert await tools_for_task(registry, LLMExecutionConfig(), client) == []


async def test_colliding_tool_names_are_an_error_not_an_overwrite() -> None:
    registry = HookRegistry(local("weather", tools=("forecast",)))
    config = LLMExecutionConfig(hooks=["weather"], pass_clients_tools=True)
    client = [Tool(function=FunctionTool(name="weather.forecast"))]
    with pytest.raises(HookError, match=r"tool name 'weather\.forecast' is offered twice"):
        await tools_for_task(registry, config, client)
    twice = [Tool(function=FunctionTool(name="x")), Tool(function=FunctionTool(name="x"))]
    with pytest.raises(HookError, match="offered twice"):
        await tools_for_task(registry, LLMExecutionConfig(pass_clients_tools=True), twice)
    with pytest.raises(HookError, match="unknown hook 'nope'"):
        await tools_for_task(registry, LLMExecutionConfig(hooks=["nope"]))


def test_tool_names_and_idempotency_keys() -> None:
    assert resolve_tool_name("weather.get_forecast") == ("weather", "get_forecast")
    assert resolve_tool_name("api.users.get") == ("api", "users.get")
    for bad in ("plain", ".x", "x."):
        with pytest.raises(HookError, match=r"not of the form 'hook\.tool'"):
            resolve_tool_name(bad)
    ctx = HookContext(run_id="run", task_id="task", step=4, attempt=1)
    # a retry of the same step keeps its key, so the receiver can de-duplicate it ...
    retry = HookContext(run_id="run", task_id="task", step=4, attempt=2)
    assert ctx.idempotency_key == retry.idempotency_key == "run:task:4"
    # ... while the same task visited again later in a loop is a different call
    assert ctx.idempotency_key != HookContext(run_id="run", task_id="task", step=6).idempotency_key
    call_a = HookContext(
        run_id="run", task_id="task", step=4, tool_call_id="call_a"
    ).idempotency_key
    assert call_a == "run:task:4:call_a"


def test_wire_form_tool_names_resolve_too() -> None:
    # the provider layer sends `hook__tool` for names a server rejects; an invented one may come back
    assert resolve_tool_name("orders__nonexistent") == ("orders", "nonexistent")
    assert resolve_tool_name("a.b__c") == ("a", "b__c")
