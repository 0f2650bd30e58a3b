"""Start-up checks of `taskengine serve`, done before uvicorn starts.

Binding the socket ourselves turns a busy port, a privileged port or an unknown host into one
clear `ConfigError` line instead of uvicorn's start-up and shut-down log, and the socket handed
to uvicorn is the one that was checked. Opening the store, the activity log and the hook
modules once first does the same for a bad `db`, `kv` or `--hooks` (inside uvicorn's lifespan
they would end in a traceback).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import Any

from taskengine.errors import ConfigError

__all__ = ["bind_listener", "check_startup", "serve_forever"]

_REASONS = {
    errno.EADDRINUSE: "the port is already in use (another server?); pick another with --port",
    errno.EACCES: "permission denied (ports below 1024 need privileges); pick another with --port",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's; check --host",
}


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket on `host:port`, or a `ConfigError` saying why not."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from exc
    sock.set_inheritable(True)
    return sock


def check_startup(settings: Any, hook_modules: Iterable[str] = ()) -> None:
    """Open and close what the app opens at start-up; a problem raises its one-line error."""
    import asyncio

    from taskengine.runtime import open_runtime

    async def probe() -> None:
        runtime = await open_runtime(
            settings, use_store=True, activity=True, hook_modules=hook_modules
        )
        await runtime.aclose()

    asyncio.run(probe())


def serve_forever(
    app: Any,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    keep_alive: float = 75,
    grace: float = 10,
) -> None:
    """Bind first (one-line errors), then run uvicorn on that socket until interrupted.

    `keep_alive` outlives the usual client pool idle time (httpx 5 s, aiohttp 15 s), so the
    server is not the side that closes a connection a client is about to reuse; after SIGTERM
    in-flight requests get `grace` seconds, then they are cancelled and the process exits.
    """
    import uvicorn

    sock = bind_listener(host, port)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level,
        timeout_keep_alive=int(keep_alive), timeout_graceful_shutdown=int(grace),
    )  # fmt: skip
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
