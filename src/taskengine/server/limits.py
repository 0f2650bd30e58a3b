"""Admission control for runs: a bounded number in flight (429 beyond it) and a run deadline.

The limiter never queues: when `server.max_concurrent_runs` runs are already executing, a new
one is refused at once with `429` and `Retry-After`, so a burst cannot pile up unbounded work
and memory. `limits.run_timeout` bounds the wall time of each run (504 when it passes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from taskengine.errors import TaskTimeoutError
from taskengine.server.errors import RunLimitError

__all__ = ["RunLimiter", "with_run_timeout"]

T = TypeVar("T")


class RunLimiter:
    """Counts runs in flight; `slot()` admits one or raises `RunLimitError` (429)."""

    __slots__ = ("active", "limit", "peak", "rejected", "retry_after")

    def __init__(self, limit: int, *, retry_after: int = 1) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.active = 0
        self.peak = 0
        self.rejected = 0

    def acquire(self) -> None:
        """Take a slot now or raise; the event loop is single-threaded, so no lock is needed."""
        if self.active >= self.limit:
            self.rejected += 1
            raise RunLimitError(self.limit, self.retry_after)
        self.active += 1
        if self.active > self.peak:
            self.peak = self.active

    def release(self) -> None:
        self.active -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


async def with_run_timeout(
    awaitable: Awaitable[T],
    seconds: float | None,
    *,
    run_id: str | None = None,
    chain_id: str | None = None,
) -> T:
    """Await a run under `limits.run_timeout`; past it the run is cancelled and 504 follows."""
    if not seconds:
        return await awaitable
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():
            raise
        raise TaskTimeoutError(
            f"the run did not finish within {seconds:g} s",
            field="limits.run_timeout",
            run_id=run_id,
            chain_id=chain_id,
        ) from None
