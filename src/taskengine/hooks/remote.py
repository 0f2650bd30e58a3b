"""Remote hooks: HTTP services described by OpenAPI, whose operations become tools.

Each `RemoteHook` points at a base URL serving `/openapi.json`. The document is fetched on
first use and cached for `schema_ttl` seconds. Configured `headers` (e.g. `Authorization`) and
`inject_body` properties are added to every call and never shown to the model: they are removed
from tool schemas and redacted from outputs and error messages. Every call carries an
`Idempotency-Key` header, so a retried or resumed step can be de-duplicated by the receiver.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType, FunctionTool, Tool, to_jsonable
from taskengine.errors import HookError
from taskengine.hooks._session import SharedSession
from taskengine.hooks.base import (
    HookContext,
    data_type_of,
    did_you_mean,
    excerpt,
    qualified_tool_name,
)
from taskengine.hooks.openapi import RemoteOperation, parse_openapi
from taskengine.hooks.remote_config import (
    RemoteHook,
    RemoteHookConfig,
    RemoteHookFields,
    parse_seconds,
    safe_url,
)
from taskengine.observability.redaction import DEFAULT_REDACTOR, Redactor
from taskengine.observability.tracing import trace_headers

if TYPE_CHECKING:
    import aiohttp

    from taskengine.chain import HookCall

__all__ = ["RemoteHook", "RemoteHookConfig", "RemoteHookRepo", "parse_seconds"]

log = logging.getLogger("taskengine.hooks")


def _hook_redactor(hook: RemoteHook) -> Redactor:
    """What this hook injects (header and body values of any type), masked wherever it could leave."""
    redactor = Redactor(by_key_name=False)
    redactor.add_values(hook.headers.values())
    redactor.add(hook.inject_body, injected=True)
    return redactor


@dataclass(slots=True)
class _Cached:
    fetched_at: float
    operations: dict[str, RemoteOperation]
    tools: list[Tool]


class RemoteHookRepo:
    """A `HookRepo` over several remote hooks sharing one HTTP session (close it: `aclose`)."""

    def __init__(
        self,
        hooks: Iterable[RemoteHook | RemoteHookFields | Mapping[str, Any]] = (),
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._hooks: dict[str, RemoteHook] = {}
        self._redactors: dict[str, Redactor] = {}
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._http = SharedSession(session)
        self.version = 0
        for hook in hooks:
            self.add(hook)

    def add(self, hook: RemoteHook | RemoteHookFields | Mapping[str, Any]) -> RemoteHook:
        """Add a hook; a second hook with the same name fails."""
        if not isinstance(hook, RemoteHook):
            hook = RemoteHook.from_config(hook)
        if hook.name in self._hooks:
            raise HookError(f"remote hook {hook.name!r} is configured twice", hook=hook.name)
        self._hooks[hook.name] = hook
        self._redactors[hook.name] = _hook_redactor(hook)
        # logs, the activity log, run history and answers mask them too
        DEFAULT_REDACTOR.add_values(hook.headers.values())
        DEFAULT_REDACTOR.add(hook.inject_body, injected=True)
        self.version += 1
        return hook

    def hook_names(self) -> list[str]:
        return list(self._hooks)

    def _hook(self, name: str) -> RemoteHook:
        hook = self._hooks.get(name)
        if hook is None:
            raise HookError(
                f"unknown remote hook {name!r}{did_you_mean(name, self._hooks)}", hook=name
            )
        return hook

    # --- HTTP plumbing --------------------------------------------------------------------

    async def _session(self) -> aiohttp.ClientSession:
        loop = self._http.loop
        session = await self._http.get()
        if self._http.loop is not loop:
            self._locks = {}  # asyncio locks belong to one loop
        return session

    async def aclose(self) -> None:
        """Close the shared HTTP session (if this repo created it)."""
        await self._http.aclose()

    async def __aenter__(self) -> RemoteHookRepo:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(
        self,
        hook: RemoteHook,
        what: str,
        method: str,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str],
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        send_body: bool = False,
    ) -> Any:
        """One HTTP call; any failure becomes a HookError naming `what` (hook and tool)."""
        import aiohttp

        redact = self._redactors[hook.name]
        session = await self._session()
        kwargs: dict[str, Any] = {
            "headers": {**hook.headers, **headers, **trace_headers()},
            "params": params or None,
        }
        if send_body:
            kwargs["data"] = json.dumps(to_jsonable(body))
            kwargs["headers"]["Content-Type"] = "application/json"
        try:
            async with session.request(
                method,
                url,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                **kwargs,
            ) as response:
                raw = await response.read()
                status = response.status
                content_type = response.headers.get("Content-Type", "")
        except TimeoutError as exc:
            raise HookError(
                f"{what}: timed out after {timeout:g}s ({method} {safe_url(url)})", hook=hook.name
            ) from exc
        except aiohttp.ClientError as exc:
            reason = redact.text(f"{type(exc).__name__}: {exc}")
            raise HookError(
                f"{what}: cannot reach {safe_url(url)}: {reason}", hook=hook.name
            ) from exc
        return _decoded(hook, what, method, url, status, content_type, raw, redact)

    # --- schemas --------------------------------------------------------------------------

    async def _state(self, hook: RemoteHook) -> _Cached:
        cached = self._cache.get(hook.name)
        if cached is not None and time.monotonic() - cached.fetched_at < hook.schema_ttl:
            return cached
        await self._session()  # binds locks to the running loop
        lock = self._locks.setdefault(hook.name, asyncio.Lock())
        async with lock:
            cached = self._cache.get(hook.name)
            now = time.monotonic()
            if cached is not None and now - cached.fetched_at < hook.schema_ttl:
                return cached
            try:
                fresh = await self._fetch(hook)
            except HookError:
                if cached is None:
                    raise
                # Keep serving the last good document rather than failing every call.
                log.warning(
                    "remote hook %r: refreshing its OpenAPI document failed; using the cached one",
                    hook.name,
                )
                cached.fetched_at = now
                return cached
            self._cache[hook.name] = fresh
            return fresh

    async def _fetch(self, hook: RemoteHook) -> _Cached:
        redact = self._redactors[hook.name]
        what = f"hook {hook.name!r}: cannot load its OpenAPI document"
        doc = await self._request(
            hook,
            what,
            "GET",
            f"{hook.url}/openapi.json",
            timeout=hook.timeout,
            headers={"Accept": "application/json"},
        )
        operations = parse_openapi(doc, hook_name=hook.name, inject_keys=hook.inject_body.keys())
        for op in operations.values():
            op.parameters = redact.value(op.parameters)
            op.description = redact.text(op.description)
        tools = [
            Tool(
                function=FunctionTool(
                    name=qualified_tool_name(hook.name, op.operation_id),
                    description=op.description or None,
                    parameters=op.parameters,
                )
            )
            for op in operations.values()
        ]
        log.debug("remote hook %r: %d operations loaded", hook.name, len(operations))
        return _Cached(time.monotonic(), operations, tools)

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached OpenAPI documents (all, or one hook's) so the next use refetches."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    # --- HookRepo -------------------------------------------------------------------------

    async def exec(
        self,
        call: HookCall,
        *,
        input: Any,
        input_type: DataType,
        context: HookContext,
        args: dict[str, Any] | None = None,
    ) -> tuple[Any, DataType]:
        hook = self._hook(call.name)
        state = await self._state(hook)
        op = self._operation(hook, state, call.tool_name)
        where = f"hook {hook.name!r} tool {op.operation_id!r}"
        values = op.arguments(hook.name, call.args, args, input)
        url, query, body = op.build_request(hook.url, values, hook.inject_body)
        timeout = hook.timeout if not context.timeout else min(hook.timeout, context.timeout)
        if not math.isfinite(timeout) or timeout <= 0:
            timeout = hook.timeout
        try:
            result = await self._request(
                hook,
                where,
                op.method,
                url,
                timeout=timeout,
                headers={"Accept": "application/json", "Idempotency-Key": context.idempotency_key},
                params=query,
                body=body,
                send_body=op.has_body,
            )
        except HookError as exc:
            exc.hook, exc.tool = hook.name, op.operation_id
            raise
        return data_type_of(self._redactors[hook.name].value(result))

    def _operation(self, hook: RemoteHook, state: _Cached, tool_name: str) -> RemoteOperation:
        ops = state.operations
        if tool_name.startswith(f"{hook.name}."):
            tool_name = tool_name[len(hook.name) + 1 :]
        if not tool_name:
            if len(ops) == 1:
                return next(iter(ops.values()))
            raise HookError(
                f"hook {hook.name!r} has {len(ops)} tools; set hook.tool_name to one of: {', '.join(sorted(ops))}",
                hook=hook.name,
                field="hook.tool_name",
            )
        op = ops.get(tool_name)
        if op is None:
            raise HookError(
                f"hook {hook.name!r} has no tool {tool_name!r}{did_you_mean(tool_name, ops)}",
                hook=hook.name,
                tool=tool_name,
                field="hook.tool_name",
            )
        return op

    async def supports(self) -> list[str]:
        return self.hook_names()

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, hook in self._hooks.items():
            try:
                state = await self._state(hook)
            except HookError as exc:
                out[name] = {"kind": "remote", "error": exc.message}
                continue
            out[name] = {"kind": "remote", "tools": [t.dump() for t in state.tools]}
        return out

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]:
        state = await self._state(self._hook(name))
        return [t.model_copy(deep=True) for t in state.tools]

    def __repr__(self) -> str:
        return f"RemoteHookRepo({', '.join(self._hooks) or 'empty'})"


def _decoded(
    hook: RemoteHook,
    what: str,
    method: str,
    url: str,
    status: int,
    content_type: str,
    raw: bytes,
    redact: Redactor,
) -> Any:
    """The JSON of a 2xx answer (None when empty); anything else is a redacted HookError."""
    text = raw.decode("utf-8", errors="replace")
    if status >= 400 or 300 <= status < 400:
        body_part = f": {excerpt(redact.text(text))}" if text.strip() else ""
        raise HookError(
            f"{what}: HTTP {status} from {method} {safe_url(url)}{body_part}", hook=hook.name
        )
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        shown = excerpt(redact.text(text), 120)
        raise HookError(
            f"{what}: HTTP {status} response is not JSON (Content-Type {content_type or 'unset'!r}): {shown}",
            hook=hook.name,
        ) from exc
