"""The hook protocol: what the engine asks of every hook provider, and the small shared types.

A hook is a named service (`weather`, `slack`, a remote OpenAPI app) offering one or more tools.
Chains call a tool through a `hook` task (`HookCall`); models call it as a tool named
`hook.tool`. Every provider (local functions, remote services, built-ins) implements `HookRepo`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel

from taskengine import suggest
from taskengine.datatypes import (
    ChatHistory,
    DataType,
    OpenAIChatRequest,
    OpenAIChatResponse,
    SearchResult,
)
from taskengine.errors import HookError

if TYPE_CHECKING:
    from taskengine.chain import HookCall, LLMExecutionConfig
    from taskengine.datatypes import Tool

__all__ = [
    "HOOK_NAME_PATTERN",
    "HookContext",
    "HookOutput",
    "HookProvider",
    "HookRepo",
    "HooksWithSchema",
    "ToolWithResolution",
    "check_hook_name",
    "data_type_of",
    "did_you_mean",
    "excerpt",
    "qualified_tool_name",
    "resolve_task_tools",
    "resolve_tool_name",
    "tools_for_task",
]

#: Hook names are plain identifiers (no dots), so `hook.tool` splits unambiguously.
HOOK_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(slots=True, frozen=True)
class HookContext:
    """Where a hook call comes from; gives every call a stable idempotency key."""

    run_id: str = ""
    chain_id: str = ""
    task_id: str = ""
    attempt: int = 1
    timeout: float | None = None
    #: The model's tool-call id when a model asked for the call, so two calls in one step differ.
    tool_call_id: str = ""
    #: The step's number in the run (1, 2, …): a task visited twice in a loop gets two numbers,
    #: while a retry, or the re-run of the step in flight when a process died, keeps its number.
    step: int = 0

    @property
    def idempotency_key(self) -> str:
        """Same for every attempt (retry or resume) of one call, different for any other call.

        Built from the run id, the task id and the step number; the attempt is deliberately left
        out, since a key that changed per attempt could not de-duplicate a retry.
        """
        key = f"{self.run_id}:{self.task_id}:{self.step}"
        return f"{key}:{self.tool_call_id}" if self.tool_call_id else key


@dataclass(slots=True, frozen=True)
class HookOutput:
    """Return this from a hook function to set the output's DataType instead of inferring it."""

    value: Any
    data_type: DataType


@dataclass(slots=True, frozen=True)
class ToolWithResolution:
    """A tool offered to a model and how to run it: through a hook, or by the client (no hook)."""

    tool: Tool
    hook_name: str = ""
    tool_name: str = ""

    @property
    def is_client_tool(self) -> bool:
        return not self.hook_name


@runtime_checkable
class HooksWithSchema(Protocol):
    """Describes hooks to models (Go: `HooksWithSchema`)."""

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]: ...

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]: ...


@runtime_checkable
class HookProvider(HooksWithSchema, Protocol):
    """Names and describes hooks (Go: `HookProvider` = `HookRegistry` + `HooksWithSchema`)."""

    async def supports(self) -> list[str]: ...


@runtime_checkable
class HookRepo(Protocol):
    """A provider of hooks: runs their tools and describes them to models."""

    async def exec(
        self,
        call: HookCall,
        *,
        input: Any,
        input_type: DataType,
        context: HookContext,
        args: dict[str, Any] | None = None,
    ) -> tuple[Any, DataType]:
        """Run `call.name`/`call.tool_name`; `args` (typed, from a model) override `call.args`."""
        ...

    async def supports(self) -> list[str]:
        """Names of the hooks this provider runs."""
        ...

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]:
        """Hook name → a description of its tools (`{"kind": …, "tools": [Tool JSON, …]}`)."""
        ...

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]:
        """The tools of hook `name`, each named `name.tool`."""
        ...


def qualified_tool_name(hook_name: str, tool_name: str) -> str:
    """`weather`, `get_forecast` → `weather.get_forecast` (the name models and histories see)."""
    return f"{hook_name}.{tool_name}"


def resolve_tool_name(name: str) -> tuple[str, str]:
    """`weather.get_forecast` → (`weather`, `get_forecast`); hook names never contain dots.

    A name without a dot but with `__` (the provider layer's wire form of `.`, which a model
    may send back for a tool it invented) splits there, so it still reaches "unknown tool".
    """
    if "." not in name and "__" in name:
        hook_name, _, tool_name = name.partition("__")
        if hook_name and tool_name:
            return hook_name, tool_name
    hook_name, dot, tool_name = name.partition(".")
    if not dot or not hook_name or not tool_name:
        raise HookError(f"tool name {name!r} is not of the form 'hook.tool'", tool=name)
    return hook_name, tool_name


def check_hook_name(name: str) -> str:
    """Reject names that could not round-trip through `hook.tool` (raises HookError)."""
    if not isinstance(name, str) or not HOOK_NAME_PATTERN.match(name):
        raise HookError(
            f"invalid hook name {name!r}: use 1-64 letters, digits, '_' or '-' (no dots)",
            hook=str(name),
        )
    return name


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?) known: a, b` — the tail of an "unknown name" message."""
    known = sorted(known)
    listing = ", ".join(known) if known else "none"
    return f"{suggest.did_you_mean(name, known)}; known: {listing}"


_MODEL_TYPES: tuple[tuple[type[BaseModel], DataType], ...] = (
    (ChatHistory, DataType.CHAT_HISTORY),
    (OpenAIChatRequest, DataType.OPENAI_CHAT),
    (OpenAIChatResponse, DataType.OPENAI_CHAT_RESPONSE),
)


def data_type_of(value: Any) -> tuple[Any, DataType]:
    """Infer the DataType of a hook's return value, normalising foreign objects to JSON."""
    if isinstance(value, HookOutput):
        return value.value, value.data_type
    if value is None:
        return None, DataType.NIL
    if isinstance(value, str):
        return value, DataType.STRING
    if isinstance(value, bool):
        return value, DataType.BOOL
    if isinstance(value, int):
        return value, DataType.INT
    if isinstance(value, float):
        return value, DataType.FLOAT
    if isinstance(value, (dict, list)):
        if value and isinstance(value, list) and all(isinstance(v, SearchResult) for v in value):
            return value, DataType.SEARCH_RESULTS
        return value, DataType.JSON
    if isinstance(value, tuple):
        return list(value), DataType.JSON
    if isinstance(value, BaseModel):
        for cls, kind in _MODEL_TYPES:
            if isinstance(value, cls):
                return value, kind
        return value.model_dump(mode="json", by_alias=True), DataType.JSON
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value), DataType.JSON
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace"), DataType.STRING
    return value, DataType.ANY


def excerpt(text: str, limit: int = 300) -> str:
    """A one-line, truncated rendering of a response body for error messages."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- tools offered to a model task ------------------------------------------------------


async def resolve_task_tools(
    registry: HookRepo,
    execute_config: LLMExecutionConfig | None,
    client_tools: list[Tool] | None = None,
) -> dict[str, ToolWithResolution]:
    """Tool name → tool and how to run it, for a model task (the seed's `ChainContext.Tools`).

    Offers the tools of `execute_config.hooks`, minus `hide_tools` (by `tool` or `hook.tool`),
    plus the client's tools when `pass_clients_tools`. Two tools with one name → HookError.
    """
    out: dict[str, ToolWithResolution] = {}
    if execute_config is None:
        return out
    hidden = set(execute_config.hide_tools or ())
    seen_hooks: set[str] = set()
    for hook_name in execute_config.hooks or ():
        if hook_name in seen_hooks:
            continue
        seen_hooks.add(hook_name)
        for tool in await registry.get_tools_for_hook_by_name(hook_name):
            full = tool.function.name
            prefix = f"{hook_name}."
            short = full[len(prefix) :] if full.startswith(prefix) else full
            if short in hidden or full in hidden:
                continue
            _claim(out, full, ToolWithResolution(tool, hook_name, short))
    if execute_config.pass_clients_tools:
        for tool in client_tools or ():
            name = tool.function.name
            if name in hidden:
                continue
            _claim(out, name, ToolWithResolution(tool))
    return out


def _claim(out: dict[str, ToolWithResolution], name: str, entry: ToolWithResolution) -> None:
    existing = out.get(name)
    if existing is not None:
        first = f"hook {existing.hook_name!r}" if existing.hook_name else "the client's tools"
        second = f"hook {entry.hook_name!r}" if entry.hook_name else "the client's tools"
        raise HookError(
            f"tool name {name!r} is offered twice (by {first} and by {second}); "
            "hide one with execute_config.hide_tools",
            hook=entry.hook_name or None,
            tool=name,
            field="execute_config.hooks",
        )
    out[name] = entry


async def tools_for_task(
    registry: HookRepo,
    execute_config: LLMExecutionConfig | None,
    client_tools: list[Tool] | None = None,
) -> list[Tool]:
    """The tools offered to the model of one task (see `resolve_task_tools`)."""
    return [
        entry.tool
        for entry in (await resolve_task_tools(registry, execute_config, client_tools)).values()
    ]
