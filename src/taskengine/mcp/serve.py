"""Chains as MCP tools: one tool per chain, served over stdio, streamable HTTP, or `/mcp`.

A tool's name is its chain's id; its input schema follows what the chain's first task takes:
a chat (`message`, or `messages` with roles) for chains that start with a model or chat step,
any JSON `input` for chains that start with a hook, text `input` otherwise. The result carries
the output (`structuredContent: {output, outputType, runId, status}`, the output as text in
`content`); a failed run is an error result that still names its run id. The client receives
one progress notification per finished step when it asked for progress.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskengine.chain import TaskChainDefinition, load_chain
from taskengine.datatypes import ChatHistory, DataType, Message, to_display, to_jsonable
from taskengine.errors import ConfigError, TaskEngineError
from taskengine.hooks.base import data_type_of
from taskengine.mcp import require_mcp

if TYPE_CHECKING:
    from taskengine.runtime import Runtime

__all__ = ["ChainSource", "ServedChain", "build_mcp_server", "input_of", "input_schema"]

log = logging.getLogger("taskengine.mcp")

#: handlers whose input is a conversation: their chains take `message` / `messages`
CHAT_HANDLERS = frozenset(
    {"model_execution", "execute_tool_calls", "convert_to_openai_chat_response"}
)
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_ROLES = ["system", "user", "assistant", "tool"]

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "output": {"description": "The chain's final output."},
        "outputType": {"type": "string", "description": "Its data type (string, json, …)."},
        "runId": {"type": "string", "description": "The run (`taskengine runs show ID`)."},
        "status": {"type": "string"},
    },
    "required": ["output", "outputType", "runId", "status"],
}


@dataclass(slots=True, frozen=True)
class ServedChain:
    """A chain offered as the MCP tool `name`."""

    name: str
    chain: TaskChainDefinition

    @property
    def takes(self) -> str:
        """`chat`, `json` or `text`: what the first task expects."""
        first = self.chain.tasks[0].handler if self.chain.tasks else ""
        if first in CHAT_HANDLERS:
            return "chat"
        return "json" if first == "hook" else "text"

    def tool(self) -> Any:
        from mcp import types

        return types.Tool(
            name=self.name,
            description=self.chain.description or f"Run the taskengine chain {self.chain.id!r}.",
            input_schema=input_schema(self.takes),
            output_schema=OUTPUT_SCHEMA,
        )


def tool_name(chain_id: str) -> str:
    """A chain id as an MCP tool name (letters, digits, `_`, `-`, `.`; at most 128)."""
    return _TOOL_NAME.sub("_", chain_id).strip("_")[:128] or "chain"


def input_schema(takes: str) -> dict[str, Any]:
    """The tool's input schema for a chain taking `chat`, `json` or `text`."""
    if takes == "chat":
        message = {
            "type": "object",
            "properties": {"role": {"enum": _ROLES}, "content": {"type": "string"}},
            "required": ["role", "content"],
        }
        return {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "The user's message."},
                "messages": {
                    "type": "array",
                    "items": message,
                    "description": "A whole conversation instead of one message.",
                },
            },
        }
    if takes == "json":
        return {
            "type": "object",
            "properties": {"input": {"description": "The chain's input (any JSON value)."}},
            "required": ["input"],
        }
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The chain's input text."}},
        "required": ["input"],
    }


def input_of(served: ServedChain, arguments: dict[str, Any] | None) -> tuple[Any, DataType]:
    """The run input and its type from the tool's arguments (bad arguments: TaskEngineError)."""
    args = arguments or {}
    where = f"chain {served.chain.id!r}"
    from jsonschema import Draft202012Validator

    errors = sorted(
        Draft202012Validator(input_schema(served.takes)).iter_errors(args),
        key=lambda e: list(e.path),
    )
    if errors:
        loc = ".".join(str(p) for p in errors[0].path)
        raise _bad(where, f"{loc}: {errors[0].message}" if loc else errors[0].message, loc)
    if served.takes == "chat":
        if isinstance(args.get("message"), str) and "messages" not in args:
            return ChatHistory(messages=[Message(role="user", content=args["message"])]), (
                DataType.CHAT_HISTORY
            )
        raw = args.get("messages")
        if isinstance(raw, list) and raw and "message" not in args:
            try:
                history = ChatHistory.model_validate({"messages": raw})
            except ValueError as exc:
                raise _bad(where, f"messages: {str(exc).splitlines()[0]}", "messages") from None
            return history, DataType.CHAT_HISTORY
        raise _bad(where, "give either 'message' (text) or 'messages' (a list)", "message")
    if "input" not in args:
        raise _bad(where, "missing 'input'", "input")
    value = args["input"]
    if served.takes == "json":
        return data_type_of(value)
    if not isinstance(value, str):
        raise _bad(where, "'input' must be a string", "input")
    return value, DataType.STRING


def _bad(where: str, what: str, field: str) -> TaskEngineError:
    from taskengine.errors import DataConversionError

    return DataConversionError(f"{where}: invalid arguments: {what}", field=field)


# --- where chains come from -----------------------------------------------------------------


class ChainSource:
    """The chains to serve: the given files (fixed), or the stored registry (read per request)."""

    def __init__(self, runtime: Runtime, files: Iterable[str | Path] = ()) -> None:
        self.runtime = runtime
        self._fixed: dict[str, ServedChain] | None = None
        self._cache: dict[tuple[str, Any], ServedChain] = {}
        files = list(files)
        if files:
            self._fixed = {}
            for path in files:
                chain = load_chain(Path(path))
                name = tool_name(chain.id or Path(path).stem)
                if name in self._fixed:
                    raise ConfigError(
                        f"two chains would be served as the MCP tool {name!r} (--chain)",
                        file=str(path),
                    )
                self._fixed[name] = ServedChain(name, chain)

    async def all(self) -> list[ServedChain]:
        if self._fixed is not None:
            return list(self._fixed.values())
        store = self.runtime.store
        if store is None:
            return []
        out: list[ServedChain] = []
        cursor = None
        for _page in range(100):
            page = await store.list_chains(limit=1000, cursor=cursor)
            out.extend(c for c in map(self._served, page.items) if c is not None)
            cursor = page.next_cursor
            if not cursor:
                break
        return out

    async def get(self, name: str) -> ServedChain | None:
        if self._fixed is not None:
            return self._fixed.get(name)
        if self.runtime.store is None:
            return None
        from taskengine.errors import NotFoundError

        try:  # a tool's name is its chain's id unless the id had to be rewritten
            served = self._served(await self.runtime.store.get_chain(name))
        except NotFoundError:
            served = None
        if served is not None and served.name == name:
            return served
        return next((c for c in await self.all() if c.name == name), None)

    def _served(self, rec: Any) -> ServedChain | None:
        """A stored chain, loaded once per version (loading lints it)."""
        key = (rec.chain_id, rec.updated_at)
        cached = self._cache.get(key)
        if cached is None:
            try:
                chain = load_chain(rec.definition)
            except TaskEngineError as exc:
                log.warning("not serving stored chain %r: %s", rec.chain_id, exc)
                return None
            if len(self._cache) >= 10_000:
                self._cache.clear()
            cached = self._cache[key] = ServedChain(tool_name(rec.chain_id), chain)
        return cached


# --- the MCP server -------------------------------------------------------------------------


def build_mcp_server(source: ChainSource) -> Any:
    """A low-level SDK `Server` whose tools are the chains of `source`."""
    require_mcp("serving chains over MCP")
    from mcp import types
    from mcp.server import Server

    from taskengine import __version__

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[c.tool() for c in await source.all()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        served = await source.get(params.name)
        if served is None:
            names = ", ".join(sorted(c.name for c in await source.all())) or "none"
            return _error(f"unknown tool {params.name!r}; tools: {names}")
        return await _run(source.runtime, served, params.arguments, ctx)

    return Server(
        "taskengine",
        version=__version__,
        instructions="Each tool runs one taskengine chain and returns its output and run id.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _run(runtime: Runtime, served: ServedChain, arguments: Any, ctx: Any) -> Any:
    from mcp import types

    try:
        value, dtype = input_of(served, arguments)
    except TaskEngineError as exc:
        return _error(str(exc))
    steps = 0

    async def on_event(event: dict[str, Any]) -> None:
        nonlocal steps
        if event.get("type") != "step_end":
            return
        steps += 1
        step = event.get("step") or {}
        try:
            await ctx.session.report_progress(
                steps,
                None,
                f"step {steps}: {step.get('taskID', '?')} ({step.get('taskHandler', '')})",
            )
        except Exception:  # a client gone or without a progress token must not fail the run
            log.debug("could not send an MCP progress notification", exc_info=True)

    try:
        result = await runtime.env.exec_env(served.chain, value, dtype, on_event=on_event)
    except TaskEngineError as exc:
        structured = {"runId": exc.run_id or "", "status": "failed", "error": str(exc)}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"error: {exc}")],
            structured_content=structured,
            is_error=True,
        )
    output = to_jsonable(result.output)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=to_display(result.output))],
        structured_content={
            "output": output,
            "outputType": result.output_type.type_name,
            "runId": result.run_id,
            "status": result.status,
        },
    )


def _error(text: str) -> Any:
    from mcp import types

    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
