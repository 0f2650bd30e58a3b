"""Data types passed between tasks, chat histories, and OpenAI wire models.

`DataType` names what a value is (the seed's twelve members, serialised by their string names);
`convert_to_type` turns loosely typed input (JSON, strings from a CLI) into that type.

- `taskengine.datatypes.datatype`: `DataType`
- `taskengine.datatypes.messages`: messages, chat histories, tools, search results
- `taskengine.datatypes.openai`: OpenAI chat-completions models and their conversions
- `taskengine.datatypes.convert`: `convert_to_type`
- `taskengine.datatypes.display`: `to_jsonable`, `to_display`
"""

from __future__ import annotations

from taskengine.datatypes.convert import convert_to_type
from taskengine.datatypes.datatype import DataType
from taskengine.datatypes.display import to_display, to_jsonable
from taskengine.datatypes.messages import (
    ChatHistory,
    FunctionCall,
    FunctionCallObject,
    FunctionTool,
    Message,
    SearchResult,
    Tool,
    ToolCall,
)
from taskengine.datatypes.openai import (
    OpenAIChatRequest,
    OpenAIChatRequestMessage,
    OpenAIChatResponse,
    OpenAIChatResponseChoice,
    OpenAIChatResponseMessage,
    OpenAITokenUsage,
    convert_chat_history_to_openai,
    convert_chat_history_to_openai_request,
    convert_openai_to_chat_history,
)

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
