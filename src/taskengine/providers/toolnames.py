"""Reversible tool-name mapping for servers that restrict tool names.

Internal tool names are `hook.tool`; OpenAI (and servers copying its validation) only accept
`^[a-zA-Z0-9_-]{1,64}$`. A `ToolNameMap` is built per request: valid names pass through
unchanged, others are sanitised (`.` becomes `__`, other characters `_`), shortened with a hash
suffix when longer than 64, and disambiguated on collision. Names the model sends back are
mapped to the originals; a name the map does not know passes through untouched, so an invented
tool still reaches the engine's "unknown tool" handling.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from taskengine.datatypes import FunctionCall, FunctionTool, Message, Tool, ToolCall

__all__ = ["MAX_TOOL_NAME", "ToolNameMap", "is_valid_tool_name"]

MAX_TOOL_NAME = 64
_VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def is_valid_tool_name(name: str) -> bool:
    """True when OpenAI would accept `name` as a function name."""
    return bool(_VALID.match(name))


def _digest(name: str, size: int = 8) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:size]


def _sanitize(name: str) -> str:
    cleaned = _INVALID_CHARS.sub("_", name.replace(".", "__")) or "tool"
    if len(cleaned) > MAX_TOOL_NAME:
        cleaned = f"{cleaned[: MAX_TOOL_NAME - 9]}_{_digest(name)}"
    return cleaned


class ToolNameMap:
    """A per-request, two-way mapping between internal tool names and wire names."""

    __slots__ = ("_to_internal", "_to_wire")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._to_wire: dict[str, str] = {}
        self._to_internal: dict[str, str] = {}
        pending = []
        # Valid names keep themselves, so a sanitised name never displaces a real one.
        for name in dict.fromkeys(names):
            if is_valid_tool_name(name):
                self._bind(name, name)
            else:
                pending.append(name)
        for name in pending:
            self._bind(name, self._free(_sanitize(name), name))

    @classmethod
    def for_tools(cls, tools: Iterable[Tool] | None) -> ToolNameMap:
        if not tools:
            return _NO_TOOLS  # most requests offer no tools; an empty map is never changed
        return cls(t.function.name for t in tools)

    def _bind(self, internal: str, wire: str) -> None:
        self._to_wire[internal] = wire
        self._to_internal[wire] = internal

    def _free(self, wire: str, internal: str) -> str:
        if wire not in self._to_internal:
            return wire
        for attempt in range(2, 10_000):
            suffix = f"_{_digest(f'{internal}#{attempt}', 6)}"
            candidate = wire[: MAX_TOOL_NAME - len(suffix)] + suffix
            if candidate not in self._to_internal:
                return candidate
        raise RuntimeError(
            f"cannot find a free wire name for tool {internal!r}"
        )  # pragma: no cover

    @property
    def identity(self) -> bool:
        """True when no name needed changing (the map can be skipped)."""
        return all(k == v for k, v in self._to_wire.items())

    def to_wire(self, name: str) -> str:
        """The name to send; names outside the map are sanitised on the fly (e.g. old history)."""
        wire = self._to_wire.get(name)
        if wire is not None:
            return wire
        return name if is_valid_tool_name(name) else _sanitize(name)

    def to_internal(self, name: str) -> str:
        """The original name for a name the model sent back (unknown names pass through)."""
        return self._to_internal.get(name, name)

    def wire_tools(self, tools: Iterable[Tool] | None) -> list[Tool]:
        """Copies of `tools` carrying their wire names."""
        out = []
        for tool in tools or []:
            wire = self.to_wire(tool.function.name)
            if wire == tool.function.name:
                out.append(tool)
            else:
                fn = FunctionTool(
                    name=wire,
                    description=tool.function.description,
                    parameters=tool.function.parameters,
                )
                out.append(Tool(type=tool.type, function=fn))
        return out

    def wire_call(self, call: ToolCall) -> ToolCall:
        """A tool call of an earlier assistant message, renamed for sending."""
        wire = self.to_wire(call.function.name)
        if wire == call.function.name:
            return call
        return ToolCall(
            id=call.id,
            type=call.type,
            function=FunctionCall(name=wire, arguments=call.function.arguments),
        )

    def internal_call(self, call: ToolCall) -> ToolCall:
        """A tool call from the model, renamed back to the internal name."""
        name = self.to_internal(call.function.name)
        if name == call.function.name:
            return call
        return ToolCall(
            id=call.id,
            type=call.type,
            function=FunctionCall(name=name, arguments=call.function.arguments),
        )

    def internal_message(self, message: Message) -> Message:
        """The assistant message with its tool calls renamed back."""
        if not message.call_tools:
            return message
        calls = [self.internal_call(c) for c in message.call_tools]
        return message.model_copy(update={"call_tools": calls})


#: The map of a request without tools (shared: a map is only written while it is built).
_NO_TOOLS = ToolNameMap()
