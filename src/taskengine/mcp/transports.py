"""Serving the chains' MCP server: over stdio, as a streamable-HTTP app, or mounted at `/mcp`.

Standard output belongs to the protocol in stdio mode, so the runtime behind it prints to
stderr. The HTTP app answers at `/mcp`; mounted in `taskengine serve` it sits behind the API's
middleware, so the same bearer token and body limit apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from taskengine.mcp import require_mcp

__all__ = ["mount_chains_mcp", "serve_http", "serve_stdio"]


async def serve_stdio(runtime: Any, chain_files: Iterable[str | Path] = ()) -> None:
    """Answer MCP on stdin/stdout until the client closes them."""
    require_mcp("taskengine mcp")
    from mcp.server.stdio import stdio_server

    from taskengine.mcp.serve import ChainSource, build_mcp_server

    server = build_mcp_server(ChainSource(runtime, chain_files))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_app(runtime: Any, chain_files: Iterable[str | Path] = (), *, host: str) -> Any:
    """A Starlette app answering streamable-HTTP MCP at `/mcp`."""
    require_mcp("taskengine mcp --http")
    from taskengine.mcp.serve import ChainSource, build_mcp_server

    server = build_mcp_server(ChainSource(runtime, chain_files))
    # DNS-rebinding protection (Host/Origin checks) is on for loopback hosts, as the SDK advises.
    return server.streamable_http_app(streamable_http_path="/mcp", host=host)


async def serve_http(
    runtime: Any, chain_files: Iterable[str | Path] = (), *, host: str, port: int
) -> None:
    """Serve `http_app` with uvicorn until interrupted."""
    import uvicorn

    app = http_app(runtime, chain_files, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()


def mount_chains_mcp(app: Any, get_runtime: Callable[[], Any]) -> Callable[[], Any]:
    """Mount the stored chains' MCP endpoint at `/mcp` of the API app.

    Returns a factory of the async context manager the app's lifespan must enter (it runs the
    SDK's session manager). Does nothing, and returns a no-op, without the `mcp` extra.
    """
    try:
        require_mcp("/mcp")
    except Exception:
        return contextlib.nullcontext
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    from taskengine.mcp.serve import ChainSource, build_mcp_server

    endpoint = _Endpoint()

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        server = build_mcp_server(ChainSource(get_runtime()))
        manager = StreamableHTTPSessionManager(
            app=server,
            # the API's bearer token guards this endpoint; Host checks would break proxies
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        async with manager.run():
            endpoint.manager = manager
            try:
                yield
            finally:
                endpoint.manager = None

    from starlette.routing import Route

    app.router.routes.append(Route("/mcp", endpoint=endpoint, include_in_schema=False))
    return running


class _Endpoint:
    """The ASGI endpoint at `/mcp`: the SDK's session manager while the app runs, else 503."""

    def __init__(self) -> None:
        self.manager: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.manager is None:
            from starlette.responses import JSONResponse

            body = {"error": {"message": "MCP is not running", "type": "unavailable", "code": 503}}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)
