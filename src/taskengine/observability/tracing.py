"""The seam between the engine's I/O and an active tracer, free of OpenTelemetry imports.

The OTel observer puts the innermost open span of a run (its step, or a tool call) in a
context variable when a step starts; code that calls out (the hook registry, the remote-hook
client) asks this module for a tool span or a `traceparent` header. Without an active tracer
every call here is one context-variable read.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

__all__ = ["SpanScope", "current_scope", "set_scope", "tool_span", "trace_headers"]


class SpanScope(Protocol):
    """What the active tracer offers code that runs inside a step."""

    def headers(self) -> dict[str, str]:
        """`traceparent` (and `tracestate`) for an outgoing request made in this scope."""
        ...

    def start_tool(self, name: str, call_id: str) -> Any:
        """Open a tool span under this scope; returns a handle with `scope` and `end(error)`."""
        ...


_scope: contextvars.ContextVar[SpanScope | None] = contextvars.ContextVar(
    "taskengine_span_scope", default=None
)


def current_scope() -> SpanScope | None:
    return _scope.get()


def set_scope(scope: SpanScope | None) -> None:
    """Make `scope` the one outgoing calls of this run attach to (None: none)."""
    _scope.set(scope)


def trace_headers() -> dict[str, str]:
    """Headers that carry the current span to a remote service ({} when nothing is traced)."""
    scope = _scope.get()
    return scope.headers() if scope is not None else {}


@asynccontextmanager
async def tool_span(name: str, call_id: str = "") -> AsyncIterator[None]:
    """Trace one hook or tool call as a child of the current step (a no-op when untraced)."""
    scope = _scope.get()
    if scope is None:
        yield
        return
    handle = scope.start_tool(name, call_id)
    token = _scope.set(handle.scope)
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        _scope.reset(token)
        handle.end(error)
