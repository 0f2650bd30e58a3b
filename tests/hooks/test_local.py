"""Local hooks: typed functions become validated tools."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from taskengine.chain import HookCall
from taskengine.datatypes import ChatHistory, DataType, Message
from taskengine.errors import HookError, RaisedError
from taskengine.hooks import (
    HookContext,
    HookOutput,
    LocalHookRegistry,
    default_local_hooks,
    hook,
    import_hooks,
)

CTX = HookContext(run_id="r1", chain_id="chain", task_id="t1", attempt=1, step=1)


class Point(BaseModel):
    lat: float
    lon: float


@pytest.fixture
def registry() -> LocalHookRegistry:
    reg = LocalHookRegistry()

    @reg.hook("weather")
    def get_forecast(
        city: str, days: int = 1, unit: Literal["c", "f"] = "c", at: Point | None = None
    ) -> dict:
        """Forecast for a city.

        Args:
            city: City name, e.g. "Berlin".
            days: How many days
                ahead to look.
        """
        return {"city": city, "days": days, "unit": unit, "at": at.model_dump() if at else None}

    @reg.hook("weather", name="alerts", description="Active weather alerts.")
    async def current_alerts(region: str) -> list[str]:
        await asyncio.sleep(0)
        return [f"storm in {region}"]

    return reg


async def call(
    reg,
    name: str,
    tool: str = "",
    args: dict | None = None,
    typed: dict | None = None,
    input: Any = "in",
):
    return await reg.exec(
        HookCall(name=name, tool_name=tool, args=args or {}),
        input=input,
        input_type=DataType.STRING,
        context=CTX,
        args=typed,
    )


async def test_type_hints_and_docstring_become_the_tool_schema(registry: LocalHookRegistry) -> None:
    tools = {
        t.function.name: t.function for t in await registry.get_tools_for_hook_by_name("weather")
    }
    assert set(tools) == {"weather.get_forecast", "weather.alerts"}
    forecast = tools["weather.get_forecast"]
    assert forecast.description == "Forecast for a city."
    params = forecast.parameters
    assert params["type"] == "object" and params["required"] == ["city"]
    assert params["additionalProperties"] is False
    assert params["properties"]["city"] == {
        "type": "string",
        "description": 'City name, e.g. "Berlin".',
    }
    assert params["properties"]["days"] == {
        "type": "integer",
        "default": 1,
        "description": "How many days ahead to look.",
    }
    assert params["properties"]["unit"]["enum"] == ["c", "f"]
    point = params["properties"]["at"]["anyOf"][0]  # nested models are inlined, not $ref'd
    assert point["properties"] == {"lat": {"type": "number"}, "lon": {"type": "number"}}
    assert "title" not in str(params) and "$defs" not in params
    assert tools["weather.alerts"].description == "Active weather alerts."
    schemas = await registry.get_schemas_for_supported_hooks()
    assert schemas["weather"]["kind"] == "local" and len(schemas["weather"]["tools"]) == 2


async def test_string_args_are_coerced_and_typed_args_win(registry: LocalHookRegistry) -> None:
    out, kind = await call(
        registry,
        "weather",
        "get_forecast",
        {"city": "Oslo", "days": "3", "at": '{"lat": "1.5", "lon": 2}'},
    )
    assert kind is DataType.JSON
    assert out == {"city": "Oslo", "days": 3, "unit": "c", "at": {"lat": 1.5, "lon": 2.0}}
    out, _ = await call(
        registry, "weather", "get_forecast", {"city": "Oslo", "days": "3"}, {"days": 5, "unit": "f"}
    )
    assert (out["days"], out["unit"]) == (5, "f")
    out, _ = await call(registry, "weather", "get_forecast", {"city": "Oslo", "days": ""})
    assert out["days"] == 1  # an empty rendered template for an optional int means "not given"


async def test_invalid_args_are_a_clear_error_and_the_function_does_not_run() -> None:
    reg = LocalHookRegistry()
    ran = []

    @reg.hook("calc")
    def add(a: int, b: int = 0) -> int:
        ran.append(1)
        return a + b

    with pytest.raises(HookError) as info:
        await call(reg, "calc", "add", {"a": "three"})
    err = info.value
    assert (err.hook, err.tool, err.field) == ("calc", "add", "a")
    assert "hook 'calc' tool 'add': invalid arguments: a:" in str(err) and "'three'" in str(err)
    with pytest.raises(HookError, match="c: is not a parameter of this tool"):
        await call(reg, "calc", "add", {"a": "1", "c": "2"})
    with pytest.raises(HookError, match="a: is required"):
        await call(reg, "calc", "add", {})
    assert ran == []
    assert await call(reg, "calc", "add", {"a": "2"}, {"b": 40}) == (42, DataType.INT)


async def test_sync_runs_in_a_thread_unless_non_blocking_async_on_the_loop() -> None:
    reg = LocalHookRegistry()
    loop_thread = threading.get_ident()

    @reg.hook("where", name="sync")
    def in_thread() -> int:
        return threading.get_ident()

    @reg.hook("where", name="inline", blocking=False)
    def on_loop() -> int:
        return threading.get_ident()

    @reg.hook("where", name="coro")
    async def coro() -> int:
        return threading.get_ident()

    assert (await call(reg, "where", "sync"))[0] != loop_thread
    assert (await call(reg, "where", "inline"))[0] == loop_thread
    assert (await call(reg, "where", "coro"))[0] == loop_thread


async def test_input_input_type_and_context_are_injected_not_exposed() -> None:
    reg = LocalHookRegistry()

    @reg.hook("inspect")
    def look(input: Any, input_type: DataType, context: HookContext, label: str = "x") -> dict:
        return {
            "input": input,
            "type": input_type.type_name,
            "key": context.idempotency_key,
            "label": label,
        }

    [tool] = await reg.get_tools_for_hook_by_name("inspect")
    assert set(tool.function.parameters["properties"]) == {"label"}
    out, _ = await call(reg, "inspect", "", {"label": "y"}, input="hello")
    assert out == {"input": "hello", "type": "string", "key": "r1:t1:1", "label": "y"}
    with pytest.raises(HookError, match="input: is not a parameter"):
        await call(reg, "inspect", "", {"input": "spoofed"})


async def test_a_raising_hook_becomes_a_hook_error_naming_hook_and_tool() -> None:
    reg = LocalHookRegistry()

    @reg.hook("flaky")
    def explode(reason: str) -> str:
        raise ValueError(f"boom: {reason}")

    @reg.hook("flaky", name="deliberate")
    async def deliberate() -> None:
        raise HookError("quota exhausted")

    @reg.hook("flaky", name="raised")
    async def raised() -> None:
        raise RaisedError("stop here")

    with pytest.raises(HookError) as info:
        await call(reg, "flaky", "explode", {"reason": "disk"})
    assert str(info.value) == "hook 'flaky' tool 'explode' failed: ValueError: boom: disk"
    assert isinstance(info.value.__cause__, ValueError)
    assert (info.value.hook, info.value.tool) == ("flaky", "explode")
    with pytest.raises(HookError) as own:
        await call(reg, "flaky", "deliberate")
    assert (own.value.message, own.value.hook, own.value.tool) == (
        "quota exhausted",
        "flaky",
        "deliberate",
    )
    with pytest.raises(RaisedError):  # the engine's own errors pass through untouched
        await call(reg, "flaky", "raised")


async def test_tool_selection_and_unknown_names(registry: LocalHookRegistry) -> None:
    single = LocalHookRegistry()
    single.register("only", lambda: "one", name="it")
    assert await call(single, "only") == ("one", DataType.STRING)
    with pytest.raises(
        HookError, match=r"has 2 tools \(alerts, get_forecast\); set hook.tool_name"
    ):
        await call(registry, "weather")
    with pytest.raises(HookError, match="did you mean 'get_forecast'"):
        await call(registry, "weather", "get_forcast", {"city": "x"})
    with pytest.raises(
        HookError, match=r"unknown hook 'wether' \(did you mean 'weather'\?\); known: weather"
    ):
        await call(registry, "wether")


def test_registration_rules() -> None:
    reg = LocalHookRegistry()

    def first(x: int) -> int:
        return x

    reg.register("h", first)
    reg.register("h", first)  # the same function again (a re-import) is fine
    version = reg.version

    def other(x: int) -> int:
        return x

    with pytest.raises(HookError, match="already has a tool 'first'"):
        reg.register("h", other, name="first")
    with pytest.raises(HookError, match=r"invalid hook name 'a\.b'"):
        reg.register("a.b", other)
    with pytest.raises(HookError, match=r"no \*args"):
        reg.register("h", lambda *xs: xs, name="star")
    reg.unregister("h", "first")
    assert reg.hook_names() == [] and reg.version > version


async def test_bare_decorator_kwargs_and_return_types() -> None:
    reg = LocalHookRegistry()

    @reg.hook
    def shout(text: str) -> str:
        return text.upper()

    @reg.hook("open")
    def anything(**extra: Any) -> dict:
        return extra

    @reg.hook("types")
    def value(kind: str) -> Any:
        return {
            "none": None,
            "bool": True,
            "float": 1.5,
            "list": [1, 2],
            "chat": ChatHistory(messages=[Message(role="user", content="hi")]),
            "point": Point(lat=1, lon=2),
            "vector": HookOutput([0.5, 1.0], DataType.VECTOR),
        }[kind]

    assert shout("a") == "A"  # the decorator returns the function unchanged
    assert await call(reg, "shout", "shout", {"text": "hey"}) == ("HEY", DataType.STRING)
    assert (await call(reg, "open", "", {"k": "v"}))[0] == {"k": "v"}
    expected = {
        "none": DataType.NIL,
        "bool": DataType.BOOL,
        "float": DataType.FLOAT,
        "list": DataType.JSON,
        "chat": DataType.CHAT_HISTORY,
        "point": DataType.JSON,
        "vector": DataType.VECTOR,
    }
    for kind, data_type in expected.items():
        _, got = await call(reg, "types", "", {"kind": kind})
        assert got is data_type, kind
    assert (await call(reg, "types", "", {"kind": "point"}))[0] == {"lat": 1.0, "lon": 2.0}


async def test_module_level_hook_decorator_uses_the_default_registry() -> None:
    @hook("te_test_default_greeter", name="greet")
    def greet(name: str) -> str:
        return f"hello {name}"

    try:
        out = await call(default_local_hooks(), "te_test_default_greeter", "greet", {"name": "ada"})
        assert out == ("hello ada", DataType.STRING)
    finally:
        default_local_hooks().unregister("te_test_default_greeter")


async def test_import_hooks_from_a_file(tmp_path) -> None:
    source = tmp_path / "my_hooks.py"
    source.write_text(
        "from taskengine.hooks import hook\n\n"
        "@hook('te_test_file_hook')\n"
        "def double(n: int) -> int:\n"
        "    return n * 2\n"
    )
    try:
        module = import_hooks(source)
        assert import_hooks(str(source)) is module  # importing twice registers once
        assert await call(default_local_hooks(), "te_test_file_hook", "", {"n": "21"}) == (
            42,
            DataType.INT,
        )
    finally:
        default_local_hooks().unregister("te_test_file_hook")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('bad module')\n")
    with pytest.raises(HookError, match=r"cannot import hooks from .*RuntimeError: bad module"):
        import_hooks(broken)
    with pytest.raises(HookError, match="hooks file not found"):
        import_hooks(tmp_path / "absent.py")
    with pytest.raises(HookError, match="ModuleNotFoundError"):
        import_hooks("te_no_such_module_xyz")
