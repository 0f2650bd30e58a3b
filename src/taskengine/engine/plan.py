"""A chain compiled for the run loop: one slots `Step` per task, built once per chain.

Compiling turns every task into a slots object (templates parsed, durations and branches
resolved), so the loop does no lookups or parsing per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskengine.chain import TERM_END, TaskChainDefinition, TaskDefinition, parse_duration
from taskengine.errors import MaxStepsExceededError, NoBranchMatchError
from taskengine.templates import Template, compile_template
from taskengine.transitions import OPERATORS

if TYPE_CHECKING:
    from taskengine.engine.record import CapturedStateUnit

__all__ = ["Plan", "Step", "too_many_steps"]


class Step:
    """A task compiled for the loop: templates parsed, durations and branches resolved."""

    __slots__ = (
        "branches",
        "compose",
        "default_goto",
        "default_next",
        "equals",
        "handler",
        "id",
        "input_var",
        "on_failure",
        "output_schema",
        "print",
        "prompt",
        "retries",
        "task",
        "timeout",
    )

    def __init__(self, task: TaskDefinition) -> None:
        self.task = task
        self.id = task.id
        self.handler = task.handler
        self.input_var = task.input_var
        self.compose = task.compose
        self.prompt: Template | None = (
            compile_template(task.prompt_template) if task.prompt_template else None
        )
        self.print: Template | None = compile_template(task.print) if task.print else None
        self.timeout = parse_duration(task.timeout) if task.timeout else None
        self.retries = task.retry_on_failure
        self.on_failure = task.transition.on_failure or None
        self.output_schema = task.output_schema
        self.default_goto: str | None = None
        self.branches: list[tuple[Callable[[str, str], bool], str, str]] = []
        for br in task.transition.branches:
            op = br.operator or "equals"
            if op == "default":
                if self.default_goto is None:
                    self.default_goto = br.goto
                continue
            self.branches.append((OPERATORS[op], br.when, br.goto))
        if not task.transition.branches:
            self.default_goto = TERM_END
        self.default_next = _next(self.default_goto) if self.default_goto is not None else None
        #: {when: next task} when every branch is an `equals`: one lookup instead of a scan
        self.equals = _equals_table(self.branches)

    def next_task(self, value: str) -> str | None:
        """The task after this one for transition value `value` (None ends the run)."""
        equals = self.equals
        if equals is not None and value.__class__ is str:
            goto = equals.get(value, _NO_MATCH)
            if goto is not _NO_MATCH:
                return goto  # type: ignore[no-any-return]  # a str | None from the table
        else:
            for fn, when, goto in self.branches:
                if fn(value, when):
                    return _next(goto)
        if self.default_goto is None:
            shown = value if len(value) <= 80 else value[:79] + "…"
            raise NoBranchMatchError(
                f"no transition branch matches {shown!r} and there is no default branch",
                task_id=self.id,
                field="transition.branches",
            )
        return self.default_next


_NO_MATCH: Any = object()


def _next(goto: str) -> str | None:
    """The task a branch goes to (None: the run ends)."""
    return None if (not goto or goto == TERM_END) else goto


def _equals_table(
    branches: list[tuple[Callable[[str, str], bool], str, str]],
) -> dict[str, str | None] | None:
    """{when: next task} for branches that all compare strings with `equals` (the first wins)."""
    equals = OPERATORS["equals"]
    if not branches or not all(fn is equals and when.__class__ is str for fn, when, _ in branches):
        return None
    table: dict[str, str | None] = {}
    for _, when, goto in branches:
        table.setdefault(when, _next(goto))
    return table


class Plan:
    """The compiled steps of a chain, its first task, and the step limit of its runs."""

    __slots__ = ("chain", "first", "max_steps", "steps")

    def __init__(
        self,
        chain: TaskChainDefinition,
        *,
        max_retries: int | None = None,
        max_steps_default: int | None = None,
    ) -> None:
        self.chain = chain
        self.steps = {t.id: Step(t) for t in chain.tasks}
        if max_retries is not None:
            for step in self.steps.values():
                step.retries = min(step.retries, max_retries)
        self.first = chain.tasks[0].id
        explicit = "max_steps" in chain.model_fields_set
        self.max_steps = chain.max_steps if explicit or not max_steps_default else max_steps_default

    def step_limit(self, cap: int | None) -> tuple[int, bool]:
        """A run's step limit, and whether `cap` (`limits.max_steps_cap`), not the chain, sets it."""
        if cap is not None and cap < self.max_steps:
            return cap, True
        return self.max_steps, False


def too_many_steps(
    history: list[CapturedStateUnit], current: str, max_steps: int, capped: bool
) -> MaxStepsExceededError:
    """The error of a run that reached its step limit, naming the last steps it took."""
    tail = " → ".join(u.task_id for u in history[-6:])
    which = f"limits.max_steps_cap={max_steps}" if capped else f"max_steps={max_steps}"
    return MaxStepsExceededError(
        f"run stopped after {which} steps (a loop that never ends?); last steps: {tail}",
        task_id=current,
        field="max_steps",
    )
