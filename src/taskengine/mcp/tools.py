"""`McpHookRepo`: the tools of MCP servers offered exactly like hooks, as `<server>.<tool>`.

Each configured server is a hook: `execute_config.hooks: [server]` offers its tools to a model
(`hide_tools` removes some), and a `hook` task calls one directly (`hook: {name: server,
tool_name: tool, args: {…}}`). Schemas come from the server's `tools/list`; arguments are
validated against them before the call; each call carries the step's idempotency key in its
`_meta` (`taskengine/idempotency-key`). Sessions are shared by every repo of the process (one
per server configuration and event loop) and start on first use.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType, FunctionTool, Tool, to_display, to_jsonable
from taskengine.errors import HookError
from taskengine.hooks.base import (
    HookContext,
    data_type_of,
    did_you_mean,
    excerpt,
    qualified_tool_name,
)
from taskengine.hooks.schema import clean_schema, coerce_string_args
from taskengine.mcp.connection import McpConnection
from taskengine.mcp.settings import McpServerSettings
from taskengine.redaction import Redactor  # a server's secrets: one redactor for every sink

if TYPE_CHECKING:
    from taskengine.chain import HookCall

__all__ = ["IDEMPOTENCY_META_KEY", "McpHookRepo", "Redactor", "shared_connection"]

log = logging.getLogger("taskengine.mcp")

#: the `_meta` key of every tools/call carrying the step's idempotency key
IDEMPOTENCY_META_KEY = "taskengine/idempotency-key"


# --- process-wide sessions ----------------------------------------------------------------


@dataclass(slots=True)
class _Shared:
    connection: McpConnection
    users: int = 0


_SHARED: dict[str, _Shared] = {}


def _key(config: McpServerSettings) -> str:
    """Identity of a session: everything but how long a repo reuses the tool list."""
    return config.model_dump_json(exclude={"tools_ttl"})


def shared_connection(config: McpServerSettings, secrets: Iterable[str] = ()) -> McpConnection:
    """The process's connection for this exact server configuration (one more user of it)."""
    entry = _SHARED.get(_key(config))
    if entry is None:
        redactor = Redactor(config.secret_values(), by_key_name=False)
        entry = _SHARED[_key(config)] = _Shared(McpConnection(config, redactor))
    entry.connection.redactor.add_values(secrets)
    entry.users += 1
    return entry.connection


async def _release(config: McpServerSettings) -> None:
    entry = _SHARED.get(_key(config))
    if entry is None:
        return
    entry.users -= 1
    if entry.users <= 0:
        del _SHARED[_key(config)]
        await entry.connection.aclose()


# --- tools ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _ToolInfo:
    name: str
    tool: Tool
    schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    _validator: Any = None

    def validator(self) -> Any:
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.schema)
        return self._validator


@dataclass(slots=True)
class _Listing:
    starts: int
    listed_at: float
    tools: dict[str, _ToolInfo]


class McpHookRepo:
    """A `HookRepo` over MCP servers; close it (`aclose`) to release their sessions."""

    def __init__(
        self,
        servers: Iterable[McpServerSettings | Mapping[str, Any]] = (),
        *,
        secrets: Iterable[str] = (),
    ) -> None:
        """`secrets`: more values to mask in results (e.g. `Settings.secret_values()`)."""
        self._secrets = [s for s in secrets if isinstance(s, str)]
        self._configs: dict[str, McpServerSettings] = {}
        self._connections: dict[str, McpConnection] = {}
        self._listings: dict[str, _Listing] = {}
        self.version = 0
        for server in servers:
            self.add(server)

    def add(self, server: McpServerSettings | Mapping[str, Any]) -> McpServerSettings:
        """Add a server; a second server with the same name fails."""
        if not isinstance(server, McpServerSettings):
            server = McpServerSettings.model_validate(server)
        if server.name in self._configs:
            raise HookError(f"MCP server {server.name!r} is configured twice", hook=server.name)
        self._configs[server.name] = server
        from taskengine.activity import redact_values
        from taskengine.logs import register_secrets

        secrets = server.secret_values()
        redact_values(secrets)  # the activity log and run history mask them too
        register_secrets(secrets)
        self.version += 1
        return server

    def hook_names(self) -> list[str]:
        return list(self._configs)

    def connection(self, name: str) -> McpConnection:
        """The (shared) session of server `name`, created on first use, not yet started."""
        config = self._configs.get(name)
        if config is None:
            raise HookError(
                f"unknown MCP server {name!r}{did_you_mean(name, self._configs)}", hook=name
            )
        conn = self._connections.get(name)
        if conn is None:
            conn = self._connections[name] = shared_connection(config, self._secrets)
        return conn

    async def aclose(self) -> None:
        """Release this repo's sessions; the last user of a session closes it."""
        names, self._connections = list(self._connections), {}
        for name in names:
            await _release(self._configs[name])

    async def __aenter__(self) -> McpHookRepo:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- listing --------------------------------------------------------------------------

    async def _tools(self, name: str) -> dict[str, _ToolInfo]:
        conn = self.connection(name)
        await conn.client()  # (re)starts the session, so `starts` is current
        listing = self._listings.get(name)
        fresh_after = time.monotonic() - self._configs[name].tools_ttl
        if (
            listing is not None
            and listing.starts == conn.starts
            and listing.listed_at > fresh_after
        ):
            return listing.tools
        redact = conn.redactor
        tools: dict[str, _ToolInfo] = {}
        for raw in await conn.list_tools():
            schema = raw.input_schema if isinstance(raw.input_schema, dict) else {}
            schema = redact.value(clean_schema(dict(schema) or {"type": "object"}))
            description = redact.text(raw.description or "") or None
            tool = Tool(
                function=FunctionTool(
                    name=qualified_tool_name(name, raw.name),
                    description=description,
                    parameters=schema,
                )
            )
            output_schema = raw.output_schema if isinstance(raw.output_schema, dict) else None
            tools[raw.name] = _ToolInfo(raw.name, tool, schema, output_schema)
        self._listings[name] = _Listing(conn.starts, time.monotonic(), tools)
        log.debug("MCP server %r: %d tools listed", name, len(tools))
        return tools

    async def supports(self) -> list[str]:
        return self.hook_names()

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._configs:
            try:
                tools = await self._tools(name)
            except HookError as exc:
                out[name] = {"kind": "mcp", "error": exc.message}
                continue
            out[name] = {"kind": "mcp", "tools": [t.tool.dump() for t in tools.values()]}
        return out

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]:
        return [t.tool.model_copy(deep=True) for t in (await self._tools(name)).values()]

    # --- calling --------------------------------------------------------------------------

    async def exec(
        self,
        call: HookCall,
        *,
        input: Any,
        input_type: DataType,
        context: HookContext,
        args: dict[str, Any] | None = None,
    ) -> tuple[Any, DataType]:
        name = call.name
        conn = self.connection(name)
        info = self._pick(name, await self._tools_for_call(name, call.tool_name), call.tool_name)
        values = _arguments(name, info, call.args, args, input)
        config = self._configs[name]
        timeout = config.timeout
        if context.timeout and 0 < context.timeout < timeout:
            timeout = context.timeout
        meta = {IDEMPOTENCY_META_KEY: context.idempotency_key}
        result = await conn.call_tool(info.name, values, timeout=timeout, meta=meta)
        return data_type_of(conn.redactor.value(_result_value(name, info, result, conn.redactor)))

    async def _tools_for_call(self, name: str, tool_name: str) -> dict[str, _ToolInfo]:
        """`_tools`, with a failure to reach the server naming the tool that was wanted."""
        try:
            return await self._tools(name)
        except HookError as exc:
            wanted = tool_name.removeprefix(f"{name}.")
            if not wanted or exc.tool:
                raise
            prefix = f"MCP server {name!r}: "
            detail = exc.message.removeprefix(prefix)
            raise HookError(
                f"MCP server {name!r} tool {wanted!r}: {detail}",
                hook=name,
                tool=wanted,
                field=exc.field,
            ) from exc

    def _pick(self, name: str, tools: dict[str, _ToolInfo], tool_name: str) -> _ToolInfo:
        if tool_name.startswith(f"{name}."):
            tool_name = tool_name[len(name) + 1 :]
        if not tool_name:
            if len(tools) == 1:
                return next(iter(tools.values()))
            raise HookError(
                f"MCP server {name!r} has {len(tools)} tools; set hook.tool_name to one of: "
                f"{', '.join(sorted(tools)) or 'none'}",
                hook=name,
                field="hook.tool_name",
            )
        info = tools.get(tool_name)
        if info is None:
            raise HookError(
                f"MCP server {name!r} has no tool {tool_name!r}{did_you_mean(tool_name, tools)}",
                hook=name,
                tool=tool_name,
                field="hook.tool_name",
            )
        return info

    def __repr__(self) -> str:
        return f"McpHookRepo({', '.join(self._configs) or 'empty'})"


def _arguments(
    server: str,
    info: _ToolInfo,
    call_args: Mapping[str, str] | None,
    args: Mapping[str, Any] | None,
    input: Any,
) -> dict[str, Any]:
    """Coerce the chain's string args, merge the model's, and validate against the schema."""
    where = f"MCP server {server!r} tool {info.name!r}"
    props = info.schema.get("properties") or {}
    values = coerce_string_args(call_args, info.schema) if call_args else {}
    if args:
        values.update(args)
    if "input" in props and "input" not in values and input is not None:
        wants_text = isinstance(props["input"], dict) and props["input"].get("type") == "string"
        values["input"] = to_display(input) if wants_text else to_jsonable(input)
    if props and info.schema.get("additionalProperties") is not True:
        unknown = sorted(set(values) - set(props))
        if unknown:
            raise HookError(
                f"{where}: invalid arguments: {unknown[0]}: is not a parameter of this tool"
                f"{did_you_mean(unknown[0], props)}",
                hook=server,
                tool=info.name,
                field=unknown[0],
            )
    values = to_jsonable(values)
    try:
        errors = sorted(info.validator().iter_errors(values), key=lambda e: list(e.path))
    except Exception as exc:  # a schema jsonschema cannot evaluate
        raise HookError(
            f"{where}: its input schema is unusable: {exc}", hook=server, tool=info.name
        ) from exc
    if errors:
        parts = []
        for err in errors[:5]:
            loc = ".".join(str(p) for p in err.path)
            parts.append(f"{loc}: {err.message}" if loc else err.message)
        raise HookError(
            f"{where}: invalid arguments: {'; '.join(parts)}",
            hook=server,
            tool=info.name,
            field=".".join(str(p) for p in errors[0].path) or None,
        )
    return values


def _result_value(server: str, info: _ToolInfo, result: Any, redactor: Redactor) -> Any:
    """The value of a `CallToolResult`: structured content, else text, else content blocks."""
    texts = [getattr(b, "text", None) for b in result.content or ()]
    if result.is_error:
        detail = redactor.text(" ".join(t for t in texts if t) or "no details")
        raise HookError(
            f"MCP server {server!r} tool {info.name!r} failed: {excerpt(detail, 500)}",
            hook=server,
            tool=info.name,
        )
    structured = result.structured_content
    if structured is not None:
        if _wraps_result(info.output_schema) and set(structured) == {"result"}:
            return structured["result"]
        return structured
    if texts and all(isinstance(t, str) for t in texts):
        text = "\n".join(texts)  # type: ignore[arg-type]
        if len(texts) == 1:
            try:
                parsed = json.loads(text)
            except ValueError:
                return text
            return parsed if isinstance(parsed, (dict, list)) else text
        return text
    return [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]


def _wraps_result(schema: dict[str, Any] | None) -> bool:
    """True for the `{"result": …}` wrapper SDK servers put around non-object return values."""
    if not schema:
        return False
    props = schema.get("properties") or {}
    return set(props) == {"result"} and schema.get("required") == ["result"]
