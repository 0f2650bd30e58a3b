"""The public handler protocol and registry: add a task handler without subclassing anything.

A handler is an async callable `(ctx, task, input, input_type) -> (output, output_type, eval)`
where `eval` is the string the task's transition branches are compared with::

    from taskengine.handlers import register_handler

    @register_handler("shout")
    async def shout(ctx, task, input, input_type):
        text = str(input).upper()
        return text, DataType.STRING, "ok"

`register_handler` adds to the process-wide registry every `SimpleExec` consults; a
`HandlerRegistry` of one's own can be passed as `SimpleEnv(SimpleExec(handlers=...))` instead
(it is copied when the executor is built). `load_chain` knows the process-wide handlers;
handlers of a registry of one's own are named to it:
`load_chain(path, extra_handlers=SimpleExec(handlers=mine).handler_names)`.

`TaskHandler` is the protocol a handler satisfies (for type checkers); `Handler` is the same
signature as a plain `Callable` type. (The chain model's `taskengine.chain.TaskHandler` is
something else: the Go engine's enum of built-in handler names.)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, overload

from taskengine.datatypes import DataType
from taskengine.errors import HandlerRegistrationError

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition
    from taskengine.handlers.context import ExecContext

__all__ = [
    "BUILTIN_HANDLER_NAMES",
    "Handler",
    "HandlerRegistrationError",
    "HandlerRegistry",
    "TaskHandler",
    "default_registry",
    "register_handler",
    "unregister_handler",
]

#: The handlers `SimpleExec` implements itself (a registry may only replace them explicitly).
BUILTIN_HANDLER_NAMES = frozenset(
    {
        "noop",
        "raise_error",
        "parse_transition",
        "parse_key_value",
        "convert_to_openai_chat_response",
        "hook",
        "condition_key",
        "parse_number",
        "parse_score",
        "parse_range",
        "raw_string",
        "embedding",
        "model_execution",
        "execute_tool_calls",
    }
)
#: Handler names of step-style tasks start with this (they belong to `TaskExecutor`).
_RESERVED_PREFIX = "step:"


class TaskHandler(Protocol):
    """One task handler: returns (output, output type, transition value)."""

    def __call__(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType, /
    ) -> Awaitable[tuple[Any, DataType, str]]: ...


#: The handler type as a plain callable signature (what `SimpleExec` stores).
Handler = Callable[
    ["ExecContext", "TaskDefinition", Any, DataType], Awaitable[tuple[Any, DataType, str]]
]


class HandlerRegistry(Mapping[str, Handler]):
    """Handlers by name; a read-only mapping with checked `register` / `unregister`.

    Args:
        handlers: handlers to start with (checked like `register`).
    """

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for name, handler in (handlers or {}).items():
            self.register(name, handler)

    @overload
    def register(
        self, name: str, handler: None = None, *, replace: bool = False
    ) -> Callable[[Any], Any]: ...

    @overload
    def register(self, name: str, handler: Any, *, replace: bool = False) -> Any: ...

    def register(self, name: str, handler: Any = None, *, replace: bool = False) -> Any:
        """Add `handler` as `name`; without `handler`, a decorator that does.

        A plain (non-async) function is accepted too and called in the event loop. Raises
        `HandlerRegistrationError` for an empty or reserved name, a handler that cannot take
        the four arguments, or a name already registered (or built in) unless `replace=True`.
        Returns the handler as given (so the decorator leaves the function unchanged).
        """
        if handler is None:
            return lambda fn: self.register(name, fn, replace=replace)
        _check_name(name)
        if not replace and (name in self._handlers or name in BUILTIN_HANDLER_NAMES):
            what = "a built-in handler" if name in BUILTIN_HANDLER_NAMES else "already registered"
            raise HandlerRegistrationError(
                f"handler {name!r} is {what}; pass replace=True to replace it"
            )
        self._handlers[name] = _as_async(name, handler)
        return handler

    def unregister(self, name: str) -> None:
        """Remove `name`; a `KeyError` when it is not registered."""
        try:
            del self._handlers[name]
        except KeyError:
            raise KeyError(f"no handler {name!r} is registered") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._handlers)

    def __getitem__(self, name: str) -> Handler:
        return self._handlers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)

    def __repr__(self) -> str:
        return f"HandlerRegistry({self.names()!r})"


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise HandlerRegistrationError(
            f"a handler name must be a non-empty string without surrounding spaces, got {name!r}"
        )
    if name.startswith(_RESERVED_PREFIX):
        raise HandlerRegistrationError(
            f"handler names starting with {_RESERVED_PREFIX!r} are reserved for step-style tasks"
        )


def _as_async(name: str, handler: Any) -> Handler:
    """`handler` checked to take (ctx, task, input, input_type); a sync function wrapped."""
    if not callable(handler):
        raise HandlerRegistrationError(
            f"handler {name!r} must be callable, got {type(handler).__name__}"
        )
    try:
        inspect.signature(handler).bind(None, None, None, None)
    except TypeError as exc:
        raise HandlerRegistrationError(
            f"handler {name!r} must accept (ctx, task, input, input_type): {exc}"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): trust the caller
        pass
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an async __call__ method
    ):
        return handler

    async def call(ctx: Any, task: Any, input: Any, input_type: DataType) -> Any:
        result = handler(ctx, task, input, input_type)
        return await result if inspect.isawaitable(result) else result

    call.__name__ = getattr(handler, "__name__", name)
    call.__wrapped__ = handler  # type: ignore[attr-defined]
    return call


#: The process-wide registry: every `SimpleExec` runs the handlers registered here.
default_registry = HandlerRegistry()


def register_handler(name: str, handler: Any = None, *, replace: bool = False) -> Any:
    """Register `handler` as `name` for every `SimpleExec` (usable as `@register_handler(name)`).

    See `HandlerRegistry.register` for what is checked.
    """
    return default_registry.register(name, handler, replace=replace)


def unregister_handler(name: str) -> None:
    """Remove a handler `register_handler` added (a `KeyError` when there is none)."""
    default_registry.unregister(name)
