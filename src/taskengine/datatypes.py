"""Data types passed between tasks, chat histories, and OpenAI wire models.

`DataType` names what a value is (the seed's twelve members, serialised by their string names);
`convert_to_type` turns loosely typed input (JSON, strings from a CLI) into that type.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from taskengine.errors import DataConversionError

if TYPE_CHECKING:
    from taskengine.chain import LLMExecutionConfig

__all__ = [
    "ChatHistory",
    "DataType",
    "FunctionCall",
    "FunctionCallObject",
    "FunctionTool",
    "Message",
    "OpenAIChatRequest",
    "OpenAIChatRequestMessage",
    "OpenAIChatResponse",
    "OpenAIChatResponseChoice",
    "OpenAIChatResponseMessage",
    "OpenAITokenUsage",
    "SearchResult",
    "Tool",
    "ToolCall",
    "convert_chat_history_to_openai",
    "convert_chat_history_to_openai_request",
    "convert_openai_to_chat_history",
    "convert_to_type",
    "to_display",
    "to_jsonable",
]


class DataType(StrEnum):
    """The type of a value flowing between tasks, valued by its wire name (`"chat_history"`).

    A `str` subclass, so JSON, YAML and pydantic all serialise it by name as the Go engine's
    `MarshalJSON`/`MarshalYAML` do; `code` is Go's iota number, accepted by `from_string` too.
    """

    ANY = "any"
    STRING = "string"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    VECTOR = "vector"
    SEARCH_RESULTS = "search_results"
    JSON = "json"
    CHAT_HISTORY = "chat_history"
    OPENAI_CHAT = "openai_chat"
    OPENAI_CHAT_RESPONSE = "openai_chat_response"
    NIL = "nil"

    @property
    def type_name(self) -> str:
        """The wire name (`"chat_history"`, `"int"` …)."""
        return self._value_

    @property
    def code(self) -> int:
        """Go's `DataType` number (iota order)."""
        return _CODES[self]

    def __str__(self) -> str:
        return self._value_

    def __int__(self) -> int:
        return _CODES[self]

    @classmethod
    def from_string(cls, name: str | int | DataType) -> DataType:
        """Parse a wire name (or Go's number); unknown names raise `DataConversionError`."""
        if isinstance(name, DataType):
            return name
        if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(_ORDER):
            return _ORDER[name]
        found = _BY_NAME.get(str(name).strip().lower().replace("-", "_"))
        if found is None:
            raise DataConversionError(
                f"unknown data type {name!r}; expected one of: {', '.join(_NAMES.values())}",
                field="inputType",
            )
        return found

    @classmethod
    def names(cls) -> list[str]:
        return list(_NAMES.values())


_ORDER = list(DataType)
_CODES = {member: i for i, member in enumerate(_ORDER)}


def _register_yaml() -> None:
    """YAML dumps a DataType as its name, like Go's `MarshalYAML` (chain.py loads yaml anyway)."""
    import yaml

    def represent(dumper: Any, data: DataType) -> Any:
        return dumper.represent_str(data._value_)

    for dumper in (yaml.SafeDumper, yaml.Dumper):
        dumper.add_representer(DataType, represent)


_register_yaml()
_NAMES = {
    DataType.ANY: "any",
    DataType.STRING: "string",
    DataType.BOOL: "bool",
    DataType.INT: "int",
    DataType.FLOAT: "float",
    DataType.VECTOR: "vector",
    DataType.SEARCH_RESULTS: "search_results",
    DataType.JSON: "json",
    DataType.CHAT_HISTORY: "chat_history",
    DataType.OPENAI_CHAT: "openai_chat",
    DataType.OPENAI_CHAT_RESPONSE: "openai_chat_response",
    DataType.NIL: "nil",
}
_BY_NAME = {v: k for k, v in _NAMES.items()}
_BY_NAME.update(
    {
        "str": DataType.STRING,
        "boolean": DataType.BOOL,
        "integer": DataType.INT,
        "number": DataType.FLOAT,
        "none": DataType.NIL,
        "null": DataType.NIL,
        "chathistory": DataType.CHAT_HISTORY,
        "searchresults": DataType.SEARCH_RESULTS,
    }
)


class WireModel(BaseModel):
    """Base for wire-format models: accepts field names and aliases, ignores unknown keys."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- tools ---------------------------------------------------------------------------------


class FunctionCall(WireModel):
    """The function name and JSON-encoded arguments of a tool call."""

    name: str
    arguments: str = ""


class ToolCall(WireModel):
    """A tool call requested by the model."""

    id: str = ""
    type: str = "function"
    function: FunctionCall


class FunctionCallObject(WireModel):
    """A `tool_choice` that names one function."""

    name: str


class FunctionTool(WireModel):
    """The schema of a function-type tool."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(WireModel):
    """A tool the model may call."""

    type: str = "function"
    function: FunctionTool


# --- chat ----------------------------------------------------------------------------------


class Message(WireModel):
    """One message of a conversation."""

    id: str = ""
    role: str
    content: str = ""
    tool_call_id: str | None = None
    call_tools: list[ToolCall] | None = Field(default=None, alias="callTools")
    timestamp: datetime | None = None


class ChatHistory(WireModel):
    """A conversation with a model; token counts are filled in by the engine."""

    messages: list[Message] = Field(default_factory=list)
    model: str = ""
    input_tokens: int = Field(default=0, alias="inputTokens")
    output_tokens: int = Field(default=0, alias="outputTokens")

    def last_message(self) -> Message | None:
        return self.messages[-1] if self.messages else None


class SearchResult(WireModel):
    """One search hit; Go's JSON key for the resource type is `type` (`resourceType` accepted)."""

    id: str = Field(default="", alias="id")
    resource_type: str = Field(
        default="",
        validation_alias=AliasChoices("type", "resourceType"),
        serialization_alias="type",
    )
    distance: float = 0.0


class OpenAIChatRequestMessage(WireModel):
    role: str
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class OpenAIChatRequest(WireModel):
    """A request in OpenAI's chat-completions format."""

    model: str = ""
    messages: list[OpenAIChatRequestMessage] = Field(default_factory=list)
    tools: list[Tool] | None = None
    tool_choice: Any = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | str | None = None
    n: int | None = None
    stream: bool | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None


class OpenAIChatResponseMessage(WireModel):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class OpenAIChatResponseChoice(WireModel):
    index: int = 0
    message: OpenAIChatResponseMessage
    finish_reason: str = "stop"


class OpenAITokenUsage(WireModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class OpenAIChatResponse(WireModel):
    """A `chat.completion` object."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[OpenAIChatResponseChoice] = Field(default_factory=list)
    usage: OpenAITokenUsage = Field(default_factory=OpenAITokenUsage)
    system_fingerprint: str | None = None


# --- conversions ---------------------------------------------------------------------------


def convert_openai_to_chat_history(
    request: OpenAIChatRequest,
) -> tuple[ChatHistory, int, list[Tool], LLMExecutionConfig]:
    """Split an OpenAI request into a ChatHistory, its max_tokens, its tools and an exec config."""
    from taskengine.chain import LLMExecutionConfig

    now = datetime.now().astimezone()
    messages = [
        Message(
            role=m.role,
            content=m.content or "",
            tool_call_id=m.tool_call_id,
            call_tools=list(m.tool_calls) if m.tool_calls else None,
            timestamp=now,
        )
        for m in request.messages
    ]
    history = ChatHistory(messages=messages, model=request.model)
    config = LLMExecutionConfig(
        model=request.model or "",
        temperature=request.temperature,
    )
    return history, int(request.max_tokens or 0), list(request.tools or []), config


def convert_chat_history_to_openai_request(
    history: ChatHistory,
) -> tuple[OpenAIChatRequest, int, int]:
    """Turn a ChatHistory into an OpenAI request; also returns its input and output token counts."""
    messages = [
        OpenAIChatRequestMessage(
            role=m.role,
            content=m.content if m.content or not m.call_tools else None,
            tool_calls=list(m.call_tools) if m.call_tools else None,
            tool_call_id=m.tool_call_id or None,
        )
        for m in history.messages
    ]
    request = OpenAIChatRequest(model=history.model, messages=messages)
    return request, history.input_tokens, history.output_tokens


def convert_chat_history_to_openai(response_id: str, history: ChatHistory) -> OpenAIChatResponse:
    """Render the last assistant message of a history as a `chat.completion` response."""
    last = next((m for m in reversed(history.messages) if m.role == "assistant"), None)
    if last is None:
        last = history.messages[-1] if history.messages else Message(role="assistant", content="")
    tool_calls = list(last.call_tools) if last.call_tools else None
    message = OpenAIChatResponseMessage(
        role="assistant",
        content=last.content if (last.content or not tool_calls) else None,
        tool_calls=tool_calls,
    )
    return OpenAIChatResponse(
        id=response_id or f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=history.model,
        choices=[
            OpenAIChatResponseChoice(
                index=0, message=message, finish_reason="tool_calls" if tool_calls else "stop"
            )
        ],
        usage=OpenAITokenUsage(
            prompt_tokens=history.input_tokens,
            completion_tokens=history.output_tokens,
            total_tokens=history.input_tokens + history.output_tokens,
        ),
    )


def _fail(value: Any, data_type: DataType, why: str = "") -> DataConversionError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:79] + "…"
    extra = f": {why}" if why else ""
    return DataConversionError(f"cannot convert {shown} to {data_type.type_name}{extra}")


def _load_json(value: Any, data_type: DataType) -> Any:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except RecursionError:
            raise _fail(value, data_type, "the JSON nests too deeply") from None
        except json.JSONDecodeError as exc:
            raise _fail(value, data_type, f"not valid JSON ({exc.msg})") from exc
    return value


def _model(value: Any, cls: type[BaseModel], data_type: DataType) -> Any:
    if isinstance(value, cls):
        return value
    raw = _load_json(value, data_type)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise _fail(value, data_type, f"{loc}: {first['msg']}" if loc else first["msg"]) from exc


_GO_INT = re.compile(r"[+-]?\d+")
_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+")
#: what Go's `strconv.ParseBool` accepts
_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}
_INT64 = 2**63


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_string(value: Any) -> str:
    """Go's `fmt.Sprintf("%v", v)` for scalars; structures as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return value.decode()
    if isinstance(value, float):
        from taskengine.templates.gofmt import format_value

        return format_value(value)
    return to_display(value)


def _to_bool(value: Any, data_type: DataType) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _GO_BOOLS:
            return _GO_BOOLS[value]
        raise _fail(
            value, data_type, "Go's ParseBool accepts 1 t T TRUE true True 0 f F FALSE false False"
        )
    if _is_number(value):
        return value != 0
    raise _fail(value, data_type)


def _to_int(value: Any, data_type: DataType) -> int:
    if isinstance(value, bool):
        raise _fail(value, data_type)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(value, data_type, "not a finite number")
        return int(value)  # Go's int(f): truncates toward zero
    if isinstance(value, str) and _GO_INT.fullmatch(value):
        number = int(value)
        if -_INT64 <= number < _INT64:
            return number
        raise _fail(value, data_type, "out of range")
    raise _fail(value, data_type)


def _to_float(value: Any, data_type: DataType) -> float:
    if _is_number(value) or (isinstance(value, str) and _GO_FLOAT.fullmatch(value)):
        number = float(value)
    elif isinstance(value, str) and _GO_HEX_FLOAT.fullmatch(value):
        number = float.fromhex(value)
    elif isinstance(value, str) and value.lstrip("+-").lower() in ("inf", "infinity", "nan"):
        number = math.nan
    else:
        raise _fail(value, data_type)
    if not math.isfinite(number):  # NaN and infinities are not JSON, and never a useful input
        raise _fail(value, data_type, "not a finite number")
    return number


def _to_json(value: Any, data_type: DataType) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    if isinstance(value, str):
        if value.startswith(("{", "[")):
            try:
                return json.loads(value)
            except RecursionError:
                raise _fail(value, data_type, "the JSON nests too deeply") from None
            except json.JSONDecodeError:
                pass
        return value  # Go keeps a string that is not a JSON document as it is
    return value


def convert_to_type(value: Any, data_type: DataType | str) -> Any:
    """Convert `value` to `data_type` by the Go engine's `ConvertToType` rules.

    Raises `DataConversionError` saying why not. Stricter than Go on purpose: NaN and
    infinities are refused for `float`, an `int` string outside int64 is refused.
    """
    data_type = DataType.from_string(data_type)
    match data_type:
        case DataType.ANY | DataType.NIL:
            return value
        case DataType.STRING:
            return _to_string(value)
        case DataType.BOOL:
            return _to_bool(value, data_type)
        case DataType.INT:
            return _to_int(value, data_type)
        case DataType.FLOAT:
            return _to_float(value, data_type)
        case DataType.VECTOR:
            raw = _load_json(value, data_type)
            if isinstance(raw, (list, tuple)) and all(_is_number(x) for x in raw):
                return [float(x) for x in raw]
            raise _fail(value, data_type, "expected a list of numbers")
        case DataType.SEARCH_RESULTS:
            raw = _load_json(value, data_type)
            if not isinstance(raw, list):
                raise _fail(value, data_type, "expected a list")
            return [_model(item, SearchResult, data_type) for item in raw]
        case DataType.JSON:
            return _to_json(value, data_type)
        case DataType.CHAT_HISTORY:
            if isinstance(value, str) and not value.lstrip().startswith("{"):
                # A bare prompt becomes a one-message conversation.
                return ChatHistory(messages=[Message(role="user", content=value)])
            return _model(value, ChatHistory, data_type)
        case DataType.OPENAI_CHAT:
            return _model(value, OpenAIChatRequest, data_type)
        case DataType.OPENAI_CHAT_RESPONSE:
            return _model(value, OpenAIChatResponse, data_type)
    raise _fail(value, data_type)  # pragma: no cover - every member is matched above


def to_jsonable(value: Any) -> Any:
    """A JSON-safe rendering of any task value (pydantic models by their wire aliases)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_display(value: Any) -> str:
    """The text form of a value: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
