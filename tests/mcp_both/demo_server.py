"""A real MCP server written with the official SDK, for the tests: `python demo_server.py [--http PORT]`.

Tools: `add`, `whoami` (its pid and the `_meta` it received), `slow`, `crash` (the process
exits mid-call), `fail` (the tool raises), `shout` (uses the env variable DEMO_TOKEN), `grow` (adds a tool).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("demo", log_level="ERROR")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def whoami(ctx: Context) -> dict:
    """The server's process id, the request's _meta, and a digest of its Authorization header."""
    meta = ctx.request_context.meta
    auth = (ctx.headers or {}).get("authorization", "")
    digest = hashlib.sha256(auth.encode()).hexdigest() if auth else ""
    return {"pid": os.getpid(), "meta": dict(meta) if meta else {}, "auth_sha256": digest}


@server.tool()
async def slow(seconds: float) -> str:
    """Answer after `seconds`."""
    await asyncio.sleep(seconds)
    return "finally"


@server.tool()
def crash() -> str:
    """Exit the server process in the middle of the call."""
    os._exit(3)


@server.tool()
def fail(reason: str) -> str:
    """Fail with `reason` (and the configured suffix)."""
    raise ToolError(reason + os.environ.get("DEMO_TOKEN", ""))


@server.tool()
def shout(text: str) -> str:
    """Upper-case `text` and add the configured suffix."""
    return text.upper() + os.environ.get("DEMO_TOKEN", "")


@server.tool()
def getenv(name: str) -> str:
    """The value of the server's environment variable `name`."""
    return os.environ.get(name, "")


@server.tool()
def grow() -> str:
    """Add the tool `extra` to this server."""

    def extra() -> str:
        return "extra!"

    server.add_tool(extra, name="extra", description="Added at run time.")
    return "grown"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", port=int(sys.argv[2]))
    else:
        server.run()
