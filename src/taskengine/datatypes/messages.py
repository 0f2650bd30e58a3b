"""Chat messages, tool calls and search results: the values of `chat_history` and friends.

Wire models accept their field names and aliases and ignore unknown keys, as the Go engine's
JSON decoding does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = [
    "ChatHistory",
    "FunctionCall",
    "FunctionCallObject",
    "FunctionTool",
    "Message",
    "SearchResult",
    "Tool",
    "ToolCall",
    "WireModel",
]


class WireModel(BaseModel):
    """Base for wire-format models: accepts field names and aliases, ignores unknown keys.

    Validators are built on first use (`defer_build`): a run that makes no model call never
    pays for them.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", defer_build=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


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
