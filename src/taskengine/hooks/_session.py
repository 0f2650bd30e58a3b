"""One lazily created aiohttp session per hook provider, rebuilt if the event loop changes."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

__all__ = ["SharedSession"]

log = logging.getLogger("taskengine.hooks")


class SharedSession:
    """Holds the provider's HTTP session; an injected session is used as is and never closed."""

    __slots__ = ("_client", "_owned", "loop")

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._client = session
        self._owned = session is None
        #: The loop the current session belongs to (providers bind their locks to it too).
        self.loop: asyncio.AbstractEventLoop | None = None

    async def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            if self._owned and self._client is not None and not self._client.closed:
                try:
                    await self._client.close()
                except Exception:  # the session of a loop that is gone; nothing left to release
                    log.debug("could not close a stale hook HTTP session", exc_info=True)
                self._client = None
        if self._client is None or self._client.closed:
            import aiohttp  # imported on first use: it costs ~0.2 s at import time

            self._client = aiohttp.ClientSession()
            self._owned = True
        return self._client

    async def aclose(self) -> None:
        if self._owned and self._client is not None and not self._client.closed:
            await self._client.close()
        if self._owned:
            self._client = None
