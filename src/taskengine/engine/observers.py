"""Per-event observer fan-out: each event's list holds only the subscribers that implement it.

The loop reads these lists directly, so an event nobody subscribes to costs nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from taskengine.engine.events import RunObserver, overridden

__all__ = ["Observers"]


class Observers:
    """Per-event lists of bound methods, holding only the subscribers that implement each event."""

    __slots__ = (
        "on_error",
        "on_llm_call",
        "on_llm_delta",
        "on_retry",
        "on_run_end",
        "on_run_start",
        "on_step_end",
        "on_step_start",
    )
    on_error: list[Callable[..., Awaitable[Any]]]
    on_llm_call: list[Callable[..., Awaitable[Any]]]
    on_llm_delta: list[Callable[..., Awaitable[Any]]]
    on_retry: list[Callable[..., Awaitable[Any]]]
    on_run_end: list[Callable[..., Awaitable[Any]]]
    on_run_start: list[Callable[..., Awaitable[Any]]]
    on_step_end: list[Callable[..., Awaitable[Any]]]
    on_step_start: list[Callable[..., Awaitable[Any]]]

    def __init__(self, observers: Iterable[RunObserver]) -> None:
        observers = list(observers)
        for name in self.__slots__:
            setattr(self, name, [getattr(o, name) for o in observers if overridden(o, name)])
