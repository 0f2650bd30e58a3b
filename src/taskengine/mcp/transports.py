"""Serving the chains' MCP server: over stdio, as a streamable-HTTP app, or mounted at `/mcp`.

Standard output belongs to the protocol in stdio mode, so the runtime behind it prints to
stderr. The HTTP app answers at `/mcp`; mounted in `taskengine serve` it sits behind the API's
middleware, so the same bearer token and body limit apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from taskengine.mcp import require_mcp

__all__ = ["mount_chains_mcp", "serve_http", "serve_stdio"]

log = logging.getLogger("taskengine.mcp")


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
    from taskengine.server.middleware import ServerMiddleware

    server = build_mcp_server(ChainSource(runtime, chain_files))
    # DNS-rebinding protection (Host/Origin checks) is on for loopback hosts, as the SDK advises.
    app = server.streamable_http_app(streamable_http_path="/mcp", host=host)
    limits = runtime.settings.server
    if not limits.api_token and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving MCP on %s without server.api_token: anyone who reaches it runs chains", host
        )
    # the API's bearer token (server.api_token) and body limit guard this endpoint too
    return ServerMiddleware(app, api_token=limits.api_token, max_body_bytes=limits.max_body_bytes)


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

    Returns a factory of the async context manager the app's lifespan enters: the endpoint
    starts the SDK's session manager on its first request and the lifespan's exit stops it.
    Without the `mcp` extra nothing is mounted and the factory is a no-op.
    """
    import importlib.util

    if importlib.util.find_spec("mcp") is None:  # the SDK itself loads on the first request
        return contextlib.nullcontext
    endpoint = _Endpoint(get_runtime)

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await endpoint.stop()

    from starlette.routing import Route

    app.router.routes.append(Route("/mcp", endpoint=endpoint, include_in_schema=False))
    return running


class _Endpoint:
    """The ASGI endpoint at `/mcp`: the SDK's session manager, run by an owner task.

    The manager's task group must be left by the task that entered it, and an app's lifespan
    may start and stop in different tasks, so a task of its own holds it.
    """

    def __init__(self, get_runtime: Callable[[], Any]) -> None:
        self._get_runtime = get_runtime
        self._manager: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        manager = self._manager or await self._start()
        await manager.handle_request(scope, receive, send)

    async def _start(self) -> Any:
        async with self._lock:
            if self._manager is not None:
                return self._manager
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
            from mcp.server.transport_security import TransportSecuritySettings

            from taskengine.mcp.serve import ChainSource, build_mcp_server

            manager = StreamableHTTPSessionManager(
                app=build_mcp_server(ChainSource(self._get_runtime())),
                # the API's bearer token guards this endpoint; Host checks would break proxies
                security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )
            ready = asyncio.Event()
            self._stop = stop = asyncio.Event()

            async def own() -> None:
                async with manager.run():
                    ready.set()
                    await stop.wait()

            self._task = asyncio.create_task(own(), name="mcp:/mcp")
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if self._task.done():
                self._task.result()  # raises what stopped it
            self._manager = manager
            return manager

    async def stop(self) -> None:
        task, self._task, self._manager = self._task, None, None
        if task is None or self._stop is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(task, 10)
        except Exception:
            log.debug("the /mcp session manager stopped with an error", exc_info=True)
