"""Run events for the inspector's live pages: an observer that wakes the SSE streams of a run."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from taskengine.engine.events import RunObserver

__all__ = ["RunEventBroker", "broker_for"]


class RunEventBroker(RunObserver):
    """Wakes whoever waits on a run when one of its steps ends or the run starts or ends."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def _wake(self, run_id: str) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()

    async def on_run_start(self, *, run: Any, input: Any, input_type: Any) -> None:
        self._wake(run.run_id)

    async def on_step_end(self, *, run: Any, step: Any) -> None:
        self._wake(run.run_id)

    async def on_run_end(self, *, run: Any, status: str, output: Any, output_type: Any,
                         error: Any) -> None:  # fmt: skip
        self._wake(run.run_id)

    async def wait(self, run_id: str, timeout: float) -> None:
        """Return at the run's next event, or after `timeout` seconds."""
        event = asyncio.Event()
        waiters = self._waiters.setdefault(run_id, set())
        waiters.add(event)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(run_id, None)


def broker_for(state: Any) -> RunEventBroker:
    """The server's broker, subscribed to its engine's run events on first use."""
    broker = state.__dict__.get("ui_broker")
    if broker is None:
        broker = state.__dict__["ui_broker"] = RunEventBroker()
        state.runtime.env.observers.append(broker)
    return broker
