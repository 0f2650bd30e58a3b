"""Local hooks: Python functions registered with a decorator and offered to chains and models.

```python
from taskengine import hook

@hook("weather")
def get_forecast(city: str, days: int = 1) -> dict:
    '''Forecast for a city.

    Args:
        city: City name, e.g. "Berlin".
        days: How many days ahead.
    '''
```

The signature and docstring become the tool's JSON Schema; arguments are validated against it
before the function runs. Parameters named `input`, `input_type` and `context` are filled in by
the engine (the task input, its DataType, the `HookContext`) and are not part of the schema.
Sync functions run in a worker thread (`asyncio.to_thread`) so they cannot stall the event
loop; pass `blocking=False` for cheap pure functions to call them inline and skip the thread hop.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import ValidationError

from taskengine.datatypes import DataType, FunctionTool, Tool
from taskengine.errors import HookError, TaskEngineError
from taskengine.hooks.base import (
    HookContext,
    check_hook_name,
    data_type_of,
    did_you_mean,
    qualified_tool_name,
)
from taskengine.hooks.schema import (
    FunctionSpec,
    coerce_string_args,
    format_validation_error,
    function_spec,
)

if TYPE_CHECKING:
    from taskengine.chain import HookCall

__all__ = ["LocalHookRegistry", "LocalTool", "default_local_hooks", "hook", "import_hooks"]

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(slots=True, frozen=True)
class LocalTool:
    """One registered function: the tool `name` of hook `hook_name`."""

    hook_name: str
    name: str
    func: Callable[..., Any]
    #: returns the tool's spec (built once: at registration, or on first use when lazy)
    describe: Callable[[], FunctionSpec]
    is_async: bool
    blocking: bool

    @property
    def spec(self) -> FunctionSpec:
        """The argument model, JSON Schema and injected parameters of the function."""
        return self.describe()

    @property
    def qualified_name(self) -> str:
        return qualified_tool_name(self.hook_name, self.name)

    def to_tool(self) -> Tool:
        """The tool as offered to a model, named `hook.tool`."""
        return Tool(
            function=FunctionTool(
                name=self.qualified_name,
                description=self.spec.description or None,
                parameters=self.spec.parameters,
            )
        )

    def validate(
        self, call_args: Mapping[str, str] | None, args: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Merge chain args (rendered strings) with typed args and validate them; returns kwargs."""
        values = coerce_string_args(call_args, self.spec.parameters) if call_args else {}
        if args:
            values.update(args)
        try:
            validated = self.spec.model.model_validate(values)
        except ValidationError as exc:
            summary, field = format_validation_error(exc)
            raise HookError(
                f"hook {self.hook_name!r} tool {self.name!r}: invalid arguments: {summary}",
                hook=self.hook_name,
                tool=self.name,
                field=field,
            ) from exc
        kwargs = {name: getattr(validated, name) for name in self.spec.fields}
        if validated.__pydantic_extra__:
            kwargs.update(validated.__pydantic_extra__)
        return kwargs

    async def invoke(
        self,
        call_args: Mapping[str, str] | None,
        args: Mapping[str, Any] | None,
        *,
        input: Any,
        input_type: DataType,
        context: HookContext,
    ) -> tuple[Any, DataType]:
        """Validate, call the function (in a thread if sync and blocking), type its result."""
        kwargs = self.validate(call_args, args)
        injected = self.spec.injected
        if injected:
            if "input" in injected:
                kwargs["input"] = input
            if "input_type" in injected:
                kwargs["input_type"] = input_type
            if "context" in injected:
                kwargs["context"] = context
        try:
            if self.is_async:
                result = await self.func(**kwargs)
            elif self.blocking:
                result = await asyncio.to_thread(self.func, **kwargs)
            else:
                result = self.func(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except HookError as exc:
            exc.hook = exc.hook or self.hook_name
            exc.tool = exc.tool or self.name
            raise
        except TaskEngineError:
            raise
        except Exception as exc:
            raise HookError(
                f"hook {self.hook_name!r} tool {self.name!r} failed: {type(exc).__name__}: {exc}",
                hook=self.hook_name,
                tool=self.name,
            ) from exc
        return data_type_of(result)


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - an object with `async def __call__`
    return call is not None and inspect.iscoroutinefunction(call)


class LocalHookRegistry:
    """Hooks backed by Python functions; a `HookRepo`. Create one per test for isolation."""

    def __init__(self) -> None:
        self._hooks: dict[str, dict[str, LocalTool]] = {}
        #: Bumped on every change so composites know to re-index.
        self.version = 0

    # --- registration ------------------------------------------------------------------

    @overload
    def hook(self, hook_name: F, /) -> F: ...

    @overload
    def hook(
        self,
        hook_name: str | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        blocking: bool = True,
    ) -> Callable[[F], F]: ...

    def hook(
        self,
        hook_name: str | Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        blocking: bool = True,
    ) -> Any:
        """Decorator: register the function as tool `name` (default: its name) of `hook_name`.

        Used bare (`@registry.hook`), the function's name is both hook and tool name.
        The function is returned unchanged, so it stays directly callable.
        """
        if callable(hook_name):
            func = hook_name
            self.register(func.__name__, func)
            return func

        def decorate(func: F) -> F:
            self.register(
                hook_name or func.__name__,
                func,
                name=name,
                description=description,
                blocking=blocking,
            )
            return func

        return decorate

    def register(
        self,
        hook_name: str,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        blocking: bool = True,
        lazy_schema: bool = False,
    ) -> LocalTool:
        """Register `func` as a tool of `hook_name`; a second, different function under the same name fails.

        `lazy_schema` builds the argument model and schema on first use instead of now (for
        functions known to have usable signatures, such as the built-in hooks: a process that
        never calls them does not pay for their models).
        """
        check_hook_name(hook_name)
        tool_name = name or getattr(func, "__name__", "")
        if tool_name == "<lambda>":
            tool_name = hook_name  # an anonymous function is the hook's one tool
        if not isinstance(tool_name, str) or not _TOOL_NAME.match(tool_name):
            raise HookError(
                f"invalid tool name {tool_name!r} for hook {hook_name!r}", hook=hook_name
            )
        title = f"{hook_name}.{tool_name}"
        describe: Callable[[], FunctionSpec]
        if lazy_schema:
            describe = cache(partial(function_spec, func, title=title, description=description))
        else:
            spec = function_spec(func, title=title, description=description)
            describe = partial(_same, spec)
        tools = self._hooks.setdefault(hook_name, {})
        existing = tools.get(tool_name)
        if existing is not None and _identity(existing.func) != _identity(func):
            raise HookError(
                f"hook {hook_name!r} already has a tool {tool_name!r} "
                f"({_identity(existing.func)}); pass name=… to register another",
                hook=hook_name,
                tool=tool_name,
            )
        tool = LocalTool(hook_name, tool_name, func, describe, _is_async(func), blocking)
        tools[tool_name] = tool
        self.version += 1
        return tool

    def unregister(self, hook_name: str, tool_name: str | None = None) -> None:
        """Remove a whole hook, or one of its tools."""
        if tool_name is None:
            self._hooks.pop(hook_name, None)
        else:
            tools = self._hooks.get(hook_name, {})
            tools.pop(tool_name, None)
            if not tools:
                self._hooks.pop(hook_name, None)
        self.version += 1

    # --- lookup ------------------------------------------------------------------------

    def hook_names(self) -> list[str]:
        """Names of the registered hooks (sync: the composite registry indexes with it)."""
        return list(self._hooks)

    def tools(self, hook_name: str) -> list[LocalTool]:
        return list(self._tools_of(hook_name).values())

    def _tools_of(self, hook_name: str) -> dict[str, LocalTool]:
        tools = self._hooks.get(hook_name)
        if tools is None:
            raise HookError(
                f"unknown hook {hook_name!r}{did_you_mean(hook_name, self._hooks)}", hook=hook_name
            )
        return tools

    def get_tool(self, hook_name: str, tool_name: str = "") -> LocalTool:
        """The tool to run; an empty `tool_name` picks the hook's only tool."""
        tools = self._tools_of(hook_name)
        if not tool_name:
            if len(tools) == 1:
                return next(iter(tools.values()))
            raise HookError(
                f"hook {hook_name!r} has {len(tools)} tools ({', '.join(sorted(tools))}); "
                "set hook.tool_name to pick one",
                hook=hook_name,
                field="hook.tool_name",
            )
        tool = tools.get(tool_name)
        if tool is None:
            raise HookError(
                f"hook {hook_name!r} has no tool {tool_name!r}{did_you_mean(tool_name, tools)}",
                hook=hook_name,
                tool=tool_name,
                field="hook.tool_name",
            )
        return tool

    # --- HookRepo ----------------------------------------------------------------------

    async def exec(
        self,
        call: HookCall,
        *,
        input: Any,
        input_type: DataType,
        context: HookContext,
        args: dict[str, Any] | None = None,
    ) -> tuple[Any, DataType]:
        tool = self.get_tool(call.name, call.tool_name)
        return await tool.invoke(
            call.args, args, input=input, input_type=input_type, context=context
        )

    async def supports(self) -> list[str]:
        return self.hook_names()

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]:
        return {
            name: {"kind": "local", "tools": [t.to_tool().dump() for t in tools.values()]}
            for name, tools in self._hooks.items()
        }

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]:
        return [t.to_tool() for t in self._tools_of(name).values()]

    def __repr__(self) -> str:
        return f"LocalHookRegistry({', '.join(self._hooks) or 'empty'})"


def _same(spec: FunctionSpec) -> FunctionSpec:
    return spec


def _identity(func: Callable[..., Any]) -> str:
    """Module-qualified name; re-registering the same function (a re-import) is not a clash."""
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', repr(func))}"


_DEFAULT = LocalHookRegistry()


def default_local_hooks() -> LocalHookRegistry:
    """The process-wide registry that `@taskengine.hook` fills (a convenience, not a requirement)."""
    return _DEFAULT


@overload
def hook(hook_name: F, /) -> F: ...


@overload
def hook(
    hook_name: str | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    blocking: bool = True,
) -> Callable[[F], F]: ...


def hook(
    hook_name: str | Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    blocking: bool = True,
) -> Any:
    """Register a function as a tool of a hook in the default registry (`@hook("weather")`)."""
    if callable(hook_name):
        return _DEFAULT.hook(hook_name)
    return _DEFAULT.hook(hook_name, name=name, description=description, blocking=blocking)


def import_hooks(spec: str | Path) -> ModuleType:
    """Import a Python file or module (`--hooks PATH_OR_MODULE`) so its `@hook`s register.

    A file is imported once per resolved path, so naming it twice does not register twice.
    """
    text = str(spec)
    path = Path(text)
    try:
        if text.endswith(".py") or path.is_file():
            resolved = path.resolve()
            if not resolved.is_file():
                raise HookError(f"hooks file not found: {text}")
            digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
            module_name = f"taskengine_hooks_{resolved.stem}_{digest}"
            if module_name in sys.modules:
                return sys.modules[module_name]
            module_spec = importlib.util.spec_from_file_location(module_name, resolved)
            if module_spec is None or module_spec.loader is None:
                raise HookError(f"cannot import hooks from {text}: not a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
            return module
        return importlib.import_module(text)
    except TaskEngineError:
        raise
    except Exception as exc:
        raise HookError(f"cannot import hooks from {text!r}: {type(exc).__name__}: {exc}") from exc
