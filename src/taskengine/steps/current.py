"""What the running step-style task knows about itself: the step being executed in this
asyncio task (what `llm_call` reports to) and the resources of the current `execute()`."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskengine.handlers.context import ExecContext
    from taskengine.step_defs import TaskStep
    from taskengine.step_runtime import StepResources

__all__ = ["CurrentStep", "current_resources", "current_step"]


@dataclass(slots=True)
class CurrentStep:
    """The step being executed in this asyncio task and its run's context."""

    ctx: ExecContext
    step: TaskStep


current_step: contextvars.ContextVar[CurrentStep | None] = contextvars.ContextVar(
    "taskengine_step", default=None
)
current_resources: contextvars.ContextVar[StepResources | None] = contextvars.ContextVar(
    "taskengine_step_resources", default=None
)
