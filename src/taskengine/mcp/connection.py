"""One client session per MCP server: started on first use, shared, restarted after a crash.

The SDK's `Client` is an anyio context manager that must be entered and left by the same task,
while the engine calls tools from many tasks. So each connection runs an owner task that holds
the `Client` open until asked to stop; callers borrow the session. A stdio server whose process
exited is noticed (its stdout reached EOF) and started again on the next call; a call that was
in flight when it died fails with an error naming the server and tool. Every start and every
call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from taskengine.errors import HookError
from taskengine.hooks.base import excerpt
from taskengine.mcp import require_mcp

if TYPE_CHECKING:
    from taskengine.mcp.settings import McpServerSettings
    from taskengine.mcp.tools import Redactor

__all__ = ["McpConnection", "McpConnectionLost"]

log = logging.getLogger("taskengine.mcp")

#: seconds the owner task gets to shut a session down (the SDK bounds a stdio shutdown at ~6 s)
_STOP_TIMEOUT = 10.0


class McpConnectionLost(HookError):
    """The server went away during a call (process exited, connection dropped)."""


class McpConnection:
    """The session of one MCP server, shared by every caller in this event loop."""

    def __init__(self, config: McpServerSettings, redactor: Redactor) -> None:
        self.config = config
        self.redactor = redactor
        self._client: Any = None
        self._read_stream: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: how many sessions were started (1 after the first call, 2 after one restart …)
        self.starts = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def alive(self) -> bool:
        """True while a session is open and (for stdio) the server's stdout has not closed."""
        if self._client is None or self._task is None or self._task.done():
            return False
        if self._read_stream is not None:
            stats = getattr(self._read_stream, "statistics", None)
            if callable(stats) and stats().open_send_streams == 0:
                return False  # the reader saw EOF: the server process exited
        return True

    # --- session lifecycle ----------------------------------------------------------------

    async def client(self) -> Any:
        """The open SDK `Client`, starting (or restarting) the server when needed."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a session belongs to the loop that opened it
            self._loop, self._lock = loop, asyncio.Lock()
            self._client = self._task = self._read_stream = None
        assert self._lock is not None
        async with self._lock:
            if self.alive:
                return self._client
            if self._task is not None:
                log.warning("MCP server %r: its session ended; starting it again", self.name)
                await self._shutdown()
            await self._start()
            return self._client

    async def _start(self) -> None:
        require_mcp(f"MCP server {self.name!r}")
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._own(ready, self._stop), name=f"mcp:{self.name}")
        timeout = self.config.connect_timeout
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout)
        except TimeoutError:
            await self._shutdown(cancel=True)  # it is stuck in the handshake, not at `stop`
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: the timeout below is what the caller hears
            raise HookError(
                f"MCP server {self.name!r}: no answer to the MCP handshake within {timeout:g}s",
                hook=self.name,
            ) from None
        except BaseException:
            await self._shutdown()
            raise
        self.starts += 1

    async def _own(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        """The owner task: enter the session, publish it, hold it until `stop`."""
        from mcp import Client
        from mcp.types import Implementation

        try:
            async with self._transport() as transport:
                client = Client(
                    transport,
                    client_info=Implementation(name="taskengine", version=_version()),
                )
                async with client:
                    self._client = client
                    if not ready.done():
                        ready.set_result(None)
                    await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(self._start_error(exc))
            elif not isinstance(exc, asyncio.CancelledError):
                log.debug("MCP server %r: session closed with %r", self.name, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._client = None
            if not ready.done():
                ready.set_exception(
                    HookError(f"MCP server {self.name!r}: session closed", hook=self.name)
                )

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[Any]:
        """The SDK transport; a stdio server's read stream is kept to notice its exit."""
        if self.config.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            command, *args = self.config.command
            params = StdioServerParameters(
                command=command, args=args, env=dict(self.config.env) or None, cwd=self.config.cwd
            )
            async with stdio_client(params, errlog=_errlog()) as streams:
                self._read_stream = streams[0]
                yield _Ready(streams)
            return
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx2.Timeout(self.config.connect_timeout, read=max(self.config.timeout, 300))
        async with (
            httpx2.AsyncClient(headers=dict(self.config.headers), timeout=timeout) as http,
            streamable_http_client(str(self.config.url), http_client=http) as streams,
        ):
            yield _Ready(streams)

    def _start_error(self, exc: BaseException) -> HookError:
        if isinstance(exc, HookError):
            return exc
        where = f"MCP server {self.name!r}"
        if isinstance(exc, FileNotFoundError | PermissionError):
            return HookError(
                f"{where}: cannot start {self.config.command[0]!r}: {exc.strerror}",  # type: ignore[index]
                hook=self.name,
                field="mcp_servers.command",
            )
        return HookError(f"{where}: cannot connect: {self.describe(exc)}", hook=self.name)

    def describe(self, exc: BaseException) -> str:
        """A one-line, secret-free account of an SDK or transport exception."""
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            return self.describe(exc.exceptions[0])
        text = str(exc) or type(exc).__name__
        if self.config.command is not None and _is_closed(exc):
            text = "the server process exited"
        return excerpt(self.redactor.text(text), 300)

    async def _shutdown(self, *, cancel: bool = False) -> None:
        task, stop = self._task, self._stop
        self._task = self._stop = self._client = self._read_stream = None
        if task is None:
            return
        if cancel:
            task.cancel()
        elif stop is not None:
            stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        except BaseException:
            log.debug("MCP server %r: session ended with an error", self.name, exc_info=True)

    async def aclose(self) -> None:
        """Stop the session (and a stdio server's process)."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._task = self._client = None  # the loop that owned it is gone, and its task too
            return
        await self._shutdown()

    async def drop(self) -> None:
        """Forget a broken session; the next call starts a new one."""
        if self._lock is None:
            return
        async with self._lock:
            await self._shutdown()

    # --- calls ----------------------------------------------------------------------------

    async def list_tools(self) -> list[Any]:
        """Every tool the server offers (all pages)."""
        client = await self.client()
        tools: list[Any] = []
        cursor: str | None = None
        for _page in range(100):
            try:
                page = await asyncio.wait_for(
                    client.list_tools(cursor=cursor), self.config.connect_timeout
                )
            except TimeoutError:
                raise HookError(
                    f"MCP server {self.name!r}: tools/list timed out after "
                    f"{self.config.connect_timeout:g}s",
                    hook=self.name,
                ) from None
            except Exception as exc:
                await self._after_failure(exc)
                raise HookError(
                    f"MCP server {self.name!r}: cannot list its tools: {self.describe(exc)}",
                    hook=self.name,
                ) from exc
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], *, timeout: float, meta: dict[str, Any]
    ) -> Any:
        """`tools/call` bounded by `timeout`; failures become HookErrors naming server and tool."""
        where = f"MCP server {self.name!r} tool {tool!r}"
        client = await self.client()
        try:
            return await asyncio.wait_for(
                client.call_tool(tool, arguments, read_timeout_seconds=timeout, meta=meta),
                timeout + 1.0,  # the SDK's own timeout fires first; this bounds everything else
            )
        except TimeoutError:
            raise HookError(
                f"{where}: timed out after {timeout:g}s", hook=self.name, tool=tool
            ) from None
        except Exception as exc:
            if _is_timeout(exc):
                raise HookError(
                    f"{where}: timed out after {timeout:g}s", hook=self.name, tool=tool
                ) from None
            lost = await self._after_failure(exc)
            if lost:
                again = "started" if self.config.command is not None else "reconnected"
                raise McpConnectionLost(
                    f"{where}: {self.describe(exc)} during the call; "
                    f"the server is {again} on the next call",
                    hook=self.name,
                    tool=tool,
                ) from exc
            raise HookError(f"{where}: {self.describe(exc)}", hook=self.name, tool=tool) from exc

    async def _after_failure(self, exc: BaseException) -> bool:
        """Drop the session when the failure means it is gone; True when it was."""
        if _is_closed(exc) or not self.alive:
            await self.drop()
            return True
        return False


class _Ready:
    """An already-open transport handed to `Client` (its entry just yields the streams)."""

    def __init__(self, streams: Any) -> None:
        self._streams = streams

    async def __aenter__(self) -> Any:
        return self._streams

    async def __aexit__(self, *exc: object) -> None:
        return None


def _is_closed(exc: BaseException) -> bool:
    from mcp.shared.exceptions import MCPError
    from mcp.types import CONNECTION_CLOSED

    if isinstance(exc, MCPError):
        return exc.error.code == CONNECTION_CLOSED
    import anyio

    return isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | ConnectionError)


def _is_timeout(exc: BaseException) -> bool:
    from mcp.shared.exceptions import MCPError
    from mcp.types import REQUEST_TIMEOUT

    return isinstance(exc, MCPError) and exc.error.code == REQUEST_TIMEOUT


def _errlog() -> Any:
    """Where a stdio server's stderr goes: ours when it is a real file, else nowhere."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):
        return open(os.devnull, "w")


def _version() -> str:
    from taskengine import __version__

    return __version__
