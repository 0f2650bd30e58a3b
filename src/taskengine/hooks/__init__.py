"""Hooks: how chains act on the world, and the tools models may call.

- `HookRepo` (the protocol every provider implements) and `HookRegistry` (many providers as one)
- local hooks: `@hook("weather")` on a typed Python function (`LocalHookRegistry`)
- remote hooks: OpenAPI services whose operations become tools (`RemoteHookRepo`)
- built-ins: `echo` and an allow-listed `http` (`BuiltinHooks`)
"""

from typing import TYPE_CHECKING

from taskengine._lazy import lazy_exports
from taskengine.hooks.base import (
    HookContext,
    HookOutput,
    HookRepo,
    ToolWithResolution,
    data_type_of,
    qualified_tool_name,
    resolve_tool_name,
)
from taskengine.hooks.composite import HookRegistry, resolve_task_tools, tools_for_task
from taskengine.hooks.local import (
    LocalHookRegistry,
    LocalTool,
    default_local_hooks,
    hook,
    import_hooks,
)
from taskengine.hooks.schema import function_spec

if TYPE_CHECKING:
    from taskengine.hooks.builtin import BuiltinHooks
    from taskengine.hooks.remote import RemoteHook, RemoteHookConfig, RemoteHookRepo

# Remote and built-in hooks load on first use: `import taskengine` stays fast without them.
_LAZY = {
    "BuiltinHooks": "taskengine.hooks.builtin",
    "RemoteHook": "taskengine.hooks.remote",
    "RemoteHookConfig": "taskengine.hooks.remote",
    "RemoteHookRepo": "taskengine.hooks.remote",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "BuiltinHooks",
    "HookContext",
    "HookOutput",
    "HookRegistry",
    "HookRepo",
    "LocalHookRegistry",
    "LocalTool",
    "RemoteHook",
    "RemoteHookConfig",
    "RemoteHookRepo",
    "ToolWithResolution",
    "data_type_of",
    "default_local_hooks",
    "function_spec",
    "hook",
    "import_hooks",
    "qualified_tool_name",
    "resolve_task_tools",
    "resolve_tool_name",
    "tools_for_task",
]
