"""Data types passed between tasks, chat histories, and OpenAI wire models.

`DataType` names what a value is (the seed's twelve members, serialised by their string names);
`convert_to_type` turns loosely typed input (JSON, strings from a CLI) into that type.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class DataType(IntEnum):
    """The type of a value flowing between tasks (Go's `DataType` iota order)."""

    ANY = 0
    STRING = 1
    BOOL = 2
    INT = 3
    FLOAT = 4
    VECTOR = 5
    SEARCH_RESULTS = 6
    JSON = 7
    CHAT_HISTORY = 8
    OPENAI_CHAT = 9
    OPENAI_CHAT_RESPONSE = 10
    NIL = 11

    @property
    def type_name(self) -> str:
        """The wire name (`"chat_history"`, `"int"` …)."""
        return _NAMES[self]

    def __str__(self) -> str:
        return _NAMES[self]

    @classmethod
    def from_string(cls, name: str | DataType) -> DataType:
        """Parse a wire name; unknown names raise `DataConversionError` listing the valid ones."""
        if isinstance(name, DataType):
            return name
        key = str(name).strip().lower().replace("-", "_")
        found = _BY_NAME.get(key)
        if found is None:
            raise DataConversionError(
                f"unknown data type {name!r}; expected one of: {', '.join(_NAMES.values())}",
                field="inputType",
            )
        return found

    @classmethod
    def names(cls) -> list[str]:
        return list(_NAMES.values())


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
    id: str = Field(default="", alias="id")
    resource_type: str = Field(default="", alias="resourceType")
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


def convert_to_type(value: Any, data_type: DataType | str) -> Any:
    """Convert `value` to `data_type`, or raise `DataConversionError` saying why not."""
    data_type = DataType.from_string(data_type)
    match data_type:
        case DataType.ANY:
            return value
        case DataType.NIL:
            if value is None or value == "":
                return None
            raise _fail(value, data_type)
        case DataType.STRING:
            if isinstance(value, str):
                return value
            if isinstance(value, (bytes, bytearray)):
                return value.decode()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            if isinstance(value, bool):
                return "true" if value else "false"
            raise _fail(value, data_type)
        case DataType.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in (
                "true",
                "false",
                "1",
                "0",
                "yes",
                "no",
            ):
                return value.strip().lower() in ("true", "1", "yes")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise _fail(value, data_type)
        case DataType.INT:
            if isinstance(value, bool):
                raise _fail(value, data_type)
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    try:
                        f = float(value.strip())
                    except ValueError:
                        raise _fail(value, data_type) from None
                    if f.is_integer():
                        return int(f)
            raise _fail(value, data_type)
        case DataType.FLOAT:
            if isinstance(value, bool):
                raise _fail(value, data_type)
            if isinstance(value, (int, float)):
                number = float(value)
            elif isinstance(value, str):
                try:
                    number = float(value.strip())
                except ValueError:
                    raise _fail(value, data_type) from None
            else:
                raise _fail(value, data_type)
            if not math.isfinite(
                number
            ):  # NaN and infinities are not JSON, and never a useful input
                raise _fail(value, data_type, "not a finite number")
            return number
        case DataType.VECTOR:
            raw = _load_json(value, data_type)
            if isinstance(raw, (list, tuple)) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw
            ):
                return [float(x) for x in raw]
            raise _fail(value, data_type, "expected a list of numbers")
        case DataType.SEARCH_RESULTS:
            raw = _load_json(value, data_type)
            if not isinstance(raw, list):
                raise _fail(value, data_type, "expected a list")
            return [_model(item, SearchResult, data_type) for item in raw]
        case DataType.JSON:
            if isinstance(value, BaseModel):
                return value.model_dump(mode="json", by_alias=True)
            return _load_json(value, data_type)
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
