"""How a chain's first task decides its MCP tool's input schema, and how arguments become input."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from taskengine.chain import load_chain
from taskengine.datatypes import ChatHistory, DataType
from taskengine.errors import ConfigError, DataConversionError
from taskengine.mcp.serve import ChainSource, ServedChain, input_of, tool_name


def served(first: dict) -> ServedChain:
    return ServedChain("c", load_chain({"id": "c", "tasks": [{"id": "first", **first}]}))


CHAT = served({"handler": "model_execution", "execute_config": {"model": "m"}})
HOOK = served({"handler": "hook", "hook": {"name": "echo"}})
TEXT = served({"handler": "parse_key_value"})


def test_each_kind_of_chain_gets_its_schema_and_input() -> None:
    assert (CHAT.takes, HOOK.takes, TEXT.takes) == ("chat", "json", "text")
    for chain, args in (
        (CHAT, {"message": "hi"}),
        (HOOK, {"input": {"a": 1}}),
        (TEXT, {"input": "a=1"}),
    ):
        jsonschema.validate(args, chain.tool().input_schema)

    history, kind = input_of(CHAT, {"message": "hi"})
    assert kind is DataType.CHAT_HISTORY and isinstance(history, ChatHistory)
    assert [(m.role, m.content) for m in history.messages] == [("user", "hi")]
    convo = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    history, _ = input_of(CHAT, {"messages": convo})
    assert [m.role for m in history.messages] == ["system", "user"]

    assert input_of(HOOK, {"input": {"a": 1}}) == ({"a": 1}, DataType.JSON)
    assert input_of(HOOK, {"input": 7}) == (7, DataType.INT)
    assert input_of(TEXT, {"input": "a=1"}) == ("a=1", DataType.STRING)


@pytest.mark.parametrize(
    ("chain", "args", "problem"),
    [
        (CHAT, {}, "give either 'message'"),
        (CHAT, {"message": "a", "messages": []}, "give either 'message'"),
        (
            CHAT,
            {"messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role: 'robot' is not",
        ),
        (TEXT, {}, "'input' is a required property"),
        (TEXT, {"input": ["a"]}, "input: ['a'] is not of type 'string'"),
    ],
)
def test_bad_arguments_are_one_clear_error(chain: ServedChain, args: dict, problem: str) -> None:
    with pytest.raises(DataConversionError) as err:
        input_of(chain, args)
    assert (
        err.value.message.startswith("chain 'c': invalid arguments: ")
        and problem in err.value.message
    )


def test_tool_names_and_clashes(tmp_path: Path) -> None:
    assert tool_name("support bot/v2") == "support_bot_v2"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.yaml").write_text(
            yaml.safe_dump({"id": "same", "tasks": [{"id": "t", "handler": "noop"}]})
        )
    with pytest.raises(ConfigError, match="two chains would be served as the MCP tool 'same'"):
        ChainSource(None, [tmp_path / "a" / "x.yaml", tmp_path / "b" / "x.yaml"])  # type: ignore[arg-type]
