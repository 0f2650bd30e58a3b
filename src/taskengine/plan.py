"""A chain compiled for the run loop, and per-event observer dispatch.

Compiling once per run turns every task into a slots object (templates parsed, durations and
branches resolved) and every observer into per-event lists of bound methods, so the loop does
no lookups or parsing per step, and an event nobody subscribes to costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from taskengine.chain import TERM_END, TaskChainDefinition, TaskDefinition, parse_duration
from taskengine.datatypes import to_jsonable
from taskengine.errors import NoBranchMatchError, StepValidationError
from taskengine.events import RunInfo, RunObserver, overridden
from taskengine.templates import Template, compile_template
from taskengine.transitions import OPERATORS

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine import EventCallback
    from taskengine.inspector import CapturedStateUnit

__all__ = ["CallbackObserver", "Observers", "Plan", "Step", "validate_output"]


class Step:
    """A task compiled for the loop: templates parsed, durations and branches resolved."""

    __slots__ = (
        "branches",
        "compose",
        "default_goto",
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

    def next_task(self, value: str) -> str | None:
        for fn, when, goto in self.branches:
            if fn(value, when):
                return None if (not goto or goto == TERM_END) else goto
        goto = self.default_goto
        if goto is None:
            shown = value if len(value) <= 80 else value[:79] + "…"
            raise NoBranchMatchError(
                f"no transition branch matches {shown!r} and there is no default branch",
                task_id=self.id,
                field="transition.branches",
            )
        return None if (not goto or goto == TERM_END) else goto


class Plan:
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

    def __init__(self, observers: Iterable[RunObserver]) -> None:
        observers = list(observers)
        for name in self.__slots__:
            setattr(self, name, [getattr(o, name) for o in observers if overridden(o, name)])


class CallbackObserver(RunObserver):
    """Feeds run events to a plain callback (`exec_env(on_event=…)`), e.g. for streaming."""

    def __init__(self, callback: EventCallback) -> None:
        self.callback = callback

    async def _send(self, event: dict[str, Any]) -> None:
        result = self.callback(event)
        if result is not None:
            await result

    async def on_step_start(
        self, *, run: RunInfo, task_id: str, handler: str, attempt: int
    ) -> None:
        await self._send(
            {
                "type": "step_start",
                "runId": run.run_id,
                "taskID": task_id,
                "handler": handler,
                "attempt": attempt,
            }
        )

    async def on_step_end(self, *, run: RunInfo, step: CapturedStateUnit) -> None:
        await self._send({"type": "step_end", "runId": run.run_id, "step": step.to_dict()})

    async def on_llm_delta(self, *, run: RunInfo, task_id: str, delta: str) -> None:
        await self._send({"type": "delta", "runId": run.run_id, "taskID": task_id, "delta": delta})

    async def on_run_end(
        self,
        *,
        run: RunInfo,
        status: str,
        output: Any,
        output_type: DataType,
        error: BaseException | None,
    ) -> None:
        await self._send({"type": "run_end", "runId": run.run_id, "status": status})


def validate_output(step: Step, output: Any) -> None:
    import jsonschema

    from taskengine.handlers.output_schema import validate_json

    try:
        validate_json(to_jsonable(output), step.output_schema)  # type: ignore[arg-type]
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise StepValidationError(
            f"output does not match output_schema at {where}: {exc.message}",
            task_id=step.id,
            field="output_schema",
        ) from None
    except jsonschema.SchemaError as exc:
        raise StepValidationError(
            f"output_schema is not a valid JSON Schema: {exc.message}",
            task_id=step.id,
            field="output_schema",
        ) from None
