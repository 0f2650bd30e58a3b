"""Closing an asyncio server without leaking the connection it was accepting.

`asyncio.Server.close()` during the loop tick between a socket's `accept()` and the task
that wraps it in a transport makes that task fail (`Server._attach` asserts the server is
open; CPython issue gh-109564). The half-made transport is then never closed, and whenever
the garbage collector finds it, it warns `unclosed transport`, which a test suite running
with warnings as errors reports against whatever test is running at that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["stop_accepting"]


async def stop_accepting(servers: Iterable[asyncio.AbstractServer]) -> None:
    """Stop `servers` taking new connections, and let the ones just accepted settle in.

    Call it before closing the servers: afterwards `close()` finds no accept in flight.
    """
    loop = asyncio.get_running_loop()
    for server in servers:
        for sock in getattr(server, "sockets", ()) or ():
            loop.remove_reader(sock.fileno())
    # an accepted socket becomes a transport in a task started by the accept: two ticks
    await asyncio.sleep(0)
    await asyncio.sleep(0)
