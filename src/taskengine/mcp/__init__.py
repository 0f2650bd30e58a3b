"""MCP in both directions: MCP servers as a tool source, and chains served as MCP tools.

- `settings`: the `mcp_servers:` entries of the settings file (no SDK needed to load them)
- `connection`: one lazily started, shared, self-restarting client session per server
- `tools`: `McpHookRepo`, the `HookRepo` offering each server's tools as `<server>.<tool>`
- `serve`: chains as MCP tools (`taskengine mcp`, `/mcp` on `taskengine serve`)

The official `mcp` SDK (2.x) is an optional dependency: `pip install 'taskengine[mcp]'`.
"""

from __future__ import annotations

from types import ModuleType

from taskengine.errors import ConfigError

__all__ = ["INSTALL_HINT", "require_mcp"]

INSTALL_HINT = "pip install 'taskengine[mcp]'"


def require_mcp(what: str) -> ModuleType:
    """Import the `mcp` SDK, or fail with one line saying which extra to install."""
    try:
        import mcp
        from mcp.server.mcpserver import MCPServer  # noqa: F401  (2.x only)
    except ImportError as exc:
        raise ConfigError(f"{what} needs the MCP SDK 2.x: {INSTALL_HINT} ({exc})") from exc
    return mcp
