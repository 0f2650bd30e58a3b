"""ToolNameMap: internal `hook.tool` names <-> names OpenAI accepts, reversibly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taskengine.datatypes import FunctionCall, FunctionTool, Message, Tool, ToolCall
from taskengine.providers.toolnames import MAX_TOOL_NAME, ToolNameMap, is_valid_tool_name


def test_valid_names_pass_through_unchanged():
    names = ToolNameMap(["get_weather", "send-mail"])
    assert names.identity
    assert names.to_wire("get_weather") == "get_weather"
    assert names.to_internal("send-mail") == "send-mail"


def test_dotted_names_round_trip():
    names = ToolNameMap(["weather.get_forecast", "slack.post"])
    wire = names.to_wire("weather.get_forecast")
    assert wire == "weather__get_forecast"
    assert is_valid_tool_name(wire)
    assert names.to_internal(wire) == "weather.get_forecast"
    assert not names.identity


def test_collision_with_an_existing_valid_name_is_disambiguated():
    # "a.b" sanitises to "a__b", which is already a real tool: the real one keeps its name.
    names = ToolNameMap(["a.b", "a__b", "a:b", "a b"])
    wires = [names.to_wire(n) for n in ["a.b", "a__b", "a:b", "a b"]]
    assert wires[1] == "a__b"
    assert len(set(wires)) == 4
    assert all(is_valid_tool_name(w) for w in wires)
    for original, wire in zip(["a.b", "a__b", "a:b", "a b"], wires, strict=True):
        assert names.to_internal(wire) == original


def test_long_names_are_shortened_with_a_stable_hash():
    long_a = "remote_service." + "x" * 80 + ".op_a"
    long_b = "remote_service." + "x" * 80 + ".op_b"
    names = ToolNameMap([long_a, long_b])
    wire_a, wire_b = names.to_wire(long_a), names.to_wire(long_b)
    assert len(wire_a) <= MAX_TOOL_NAME and len(wire_b) <= MAX_TOOL_NAME
    assert wire_a != wire_b
    assert names.to_internal(wire_a) == long_a
    assert ToolNameMap([long_a]).to_wire(long_a) == wire_a  # deterministic across requests


def test_unknown_names_from_the_model_pass_through():
    names = ToolNameMap(["weather.get"])
    assert names.to_internal("invented_tool") == "invented_tool"


def test_tools_calls_and_messages_are_rewritten():
    tool = Tool(
        function=FunctionTool(name="weather.get", description="d", parameters={"type": "object"})
    )
    names = ToolNameMap.for_tools([tool])
    [wire_tool] = names.wire_tools([tool])
    assert wire_tool.function.name == "weather__get"
    assert wire_tool.function.parameters == {"type": "object"}
    assert tool.function.name == "weather.get"  # the original is not mutated

    call = ToolCall(id="1", function=FunctionCall(name="weather__get", arguments="{}"))
    message = names.internal_message(Message(role="assistant", call_tools=[call]))
    assert message.call_tools[0].function.name == "weather.get"
    assert names.wire_call(message.call_tools[0]).function.name == "weather__get"


@given(st.lists(st.text(min_size=1, max_size=90), max_size=12))
def test_any_names_map_to_unique_valid_names_and_back(raw_names):
    names = ToolNameMap(raw_names)
    wires = {name: names.to_wire(name) for name in set(raw_names)}
    assert all(is_valid_tool_name(w) for w in wires.values())
    assert len(set(wires.values())) == len(wires)
    for original, wire in wires.items():
        assert names.to_internal(wire) == original
