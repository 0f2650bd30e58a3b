"""`queue:` settings: how runs flow to worker processes through procrastinate.

Plain pydantic, no procrastinate import, so loading settings never needs the `queue` extra.
Variables map as usual: `TASKENGINE_QUEUE__NAME=bulk`, `TASKENGINE_QUEUE__MAX_ATTEMPTS=3`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from taskengine.seconds import Seconds as _Seconds

__all__ = ["QueueSettings"]


class QueueSettings(BaseModel):
    """Queue name, retries of failing runs, and how fast a dead worker's runs move on."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(
        "taskengine",
        pattern=r"^[A-Za-z0-9_\-.]{1,64}$",
        description="Queue that submit/batch/POST /tasks use and workers read by default.",
    )
    max_attempts: int = Field(
        5, ge=1, le=100, description="Attempts of a failing run before it stays failed."
    )
    retry_base: _Seconds = Field(
        1.0, ge=0, description="First delay before a failed run is retried; doubles each time."
    )
    retry_max: _Seconds = Field(300.0, ge=0, description="Longest delay between two attempts.")
    heartbeat: _Seconds = Field(
        5.0, gt=0, description="Seconds between a worker's heartbeats in the queue's table."
    )
    stalled_after: _Seconds = Field(
        20.0,
        gt=0,
        description="A worker silent this long is dead: its runs go back to the queue.",
    )
    stall_check: int = Field(
        5, ge=1, le=59, description="Seconds between two looks for a dead worker's runs."
    )
    shutdown_timeout: _Seconds | None = Field(
        60.0,
        ge=0,
        description="On SIGTERM, seconds to let runs in flight finish before they are "
        "checkpointed and handed back to the queue (None: wait for them).",
    )
