import pytest

from taskengine.datatypes import (
    ChatHistory,
    DataType,
    Message,
    OpenAIChatRequest,
    OpenAIChatResponse,
    ToolCall,
    convert_chat_history_to_openai,
    convert_chat_history_to_openai_request,
    convert_openai_to_chat_history,
    convert_to_type,
    to_display,
    to_jsonable,
)
from taskengine.errors import DataConversionError


def test_twelve_members_with_go_order_and_names():
    assert [d.type_name for d in DataType] == [
        "any",
        "string",
        "bool",
        "int",
        "float",
        "vector",
        "search_results",
        "json",
        "chat_history",
        "openai_chat",
        "openai_chat_response",
        "nil",
    ]
    assert [int(d) for d in DataType] == list(range(12))
    assert DataType.from_string("chat_history") is DataType.CHAT_HISTORY
    with pytest.raises(DataConversionError, match="unknown data type 'chat'"):
        DataType.from_string("chat")


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        ("42", "int", 42),
        (4.9, "int", 4),
        ("2.5", "float", 2.5),
        ("true", "bool", True),
        ("0", "bool", False),
        ("[1, 2.5]", "vector", [1.0, 2.5]),
        ('{"a": 1}', "json", {"a": 1}),
        (7, "string", "7"),
        ("kept", "nil", "kept"),
        ("x", "any", "x"),
    ],
)
def test_convert_to_type(value, dtype, expected):
    assert convert_to_type(value, dtype) == expected


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        ("abc", "int"),
        ("4.5", "int"),
        ("maybe", "bool"),
        (" 4 ", "int"),
        ('["a"]', "vector"),
        (True, "int"),
        ("yes", "bool"),
    ],
)
def test_convert_to_type_rejects_with_reason(value, dtype):
    with pytest.raises(DataConversionError, match=f"to {dtype}"):
        convert_to_type(value, dtype)


@pytest.mark.parametrize("value", ["nan", "inf", float("nan"), float("-inf")])
def test_non_finite_floats_are_rejected(value):
    with pytest.raises(DataConversionError, match="not a finite number"):
        convert_to_type(value, "float")


def test_chat_history_from_json_and_from_bare_prompt():
    history = convert_to_type(
        '{"messages": [{"role": "user", "content": "hi"}], "inputTokens": 3}', "chat_history"
    )
    assert isinstance(history, ChatHistory) and history.input_tokens == 3
    assert convert_to_type("hello", "chat_history").messages[0].content == "hello"
    with pytest.raises(DataConversionError, match=r"messages\.0\.role"):
        convert_to_type('{"messages": [{"content": "no role"}]}', "chat_history")


def test_message_json_keys_match_go():
    message = Message(
        role="assistant", call_tools=[ToolCall(id="c1", function={"name": "f", "arguments": "{}"})]
    )
    dumped = message.dump()
    assert "callTools" in dumped and dumped["callTools"][0]["function"]["name"] == "f"
    assert ChatHistory(messages=[message]).dump()["inputTokens"] == 0


def test_openai_round_trip():
    request = OpenAIChatRequest.model_validate(
        {
            "model": "m",
            "temperature": 0.3,
            "max_tokens": 50,
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "hi"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}
            ],
        }
    )
    history, max_tokens, tools, config = convert_openai_to_chat_history(request)
    assert [m.role for m in history.messages] == ["system", "user"]
    assert (max_tokens, tools[0].function.name, config.model, config.temperature) == (
        50,
        "get",
        "m",
        0.3,
    )
    back, inp, out = convert_chat_history_to_openai_request(
        history.model_copy(update={"input_tokens": 5})
    )
    assert back.messages[1].content == "hi" and (inp, out) == (5, 0)


def test_history_to_openai_response():
    history = ChatHistory(
        model="m",
        input_tokens=10,
        output_tokens=2,
        messages=[
            Message(role="user", content="weather?"),
            Message(
                role="assistant",
                call_tools=[ToolCall(id="c", function={"name": "w.get", "arguments": "{}"})],
            ),
        ],
    )
    response = convert_chat_history_to_openai("id1", history)
    assert isinstance(response, OpenAIChatResponse)
    assert response.object == "chat.completion"
    assert response.choices[0].finish_reason == "tool_calls"
    assert response.choices[0].message.content is None
    assert response.usage.total_tokens == 12


def test_to_display():
    assert to_display({"a": 1}) == '{"a":1}'
    assert to_display(True) == "true"
    assert to_display(None) == ""


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        # bool: what Go's strconv.ParseBool accepts, numbers by != 0
        *[(text, "bool", True) for text in ("1", "t", "T", "TRUE", "true", "True")],
        *[(text, "bool", False) for text in ("0", "f", "F", "FALSE", "false", "False")],
        (2, "bool", True),
        (0.0, "bool", False),
        (-0.5, "bool", True),
        # int: floats truncate toward zero, strings as strconv.Atoi reads them
        (3.99, "int", 3),
        (-3.99, "int", -3),
        ("-17", "int", -17),
        ("+5", "int", 5),
        # float: strconv.ParseFloat grammar
        ("1e3", "float", 1000.0),
        (".5", "float", 0.5),
        ("0x1p-2", "float", 0.25),
        # json: a string that is not a JSON document stays a string
        ("not json", "json", "not json"),
        ("{broken", "json", "{broken"),
        ("42", "json", "42"),
        ("[1, 2]", "json", [1, 2]),
        # nil passes the value through; string formats any value (Go's %v for scalars)
        ({"a": 1}, "nil", {"a": 1}),
        (2.0, "string", "2"),
        (1e21, "string", "1e+21"),
        (True, "string", "true"),
        ({"x": 1}, "string", '{"x":1}'),
    ],
)
def test_convert_to_type_follows_go(value, dtype, expected):
    assert convert_to_type(value, dtype) == expected


def test_search_results_read_the_go_type_key():
    results = convert_to_type([{"id": "a", "type": "file", "distance": 0.5}], "search_results")
    assert results[0].resource_type == "file"
    assert to_jsonable(results) == [{"id": "a", "type": "file", "distance": 0.5}]
    legacy = convert_to_type('[{"id": "b", "resourceType": "doc"}]', "search_results")
    assert legacy[0].resource_type == "doc"


def test_data_type_serialises_by_name_in_json_yaml_and_pydantic():
    import json

    import yaml
    from pydantic import BaseModel

    class Holder(BaseModel):
        kind: DataType

    assert json.dumps({"t": DataType.CHAT_HISTORY}) == '{"t": "chat_history"}'
    assert yaml.safe_load(yaml.safe_dump({"t": DataType.CHAT_HISTORY})) == {"t": "chat_history"}
    assert Holder(kind="chat_history").model_dump_json() == '{"kind":"chat_history"}'
    assert Holder.model_validate_json('{"kind":"int"}').kind is DataType.INT
    assert DataType.from_string(8) is DataType.CHAT_HISTORY and DataType.CHAT_HISTORY.code == 8
