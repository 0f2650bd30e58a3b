"""One run of a chain: the state machine that walks its steps.

Every step goes through the same phases: its input is picked (`_take_input`), its task is
attempted with timeout and retries (`_attempt`), then the run moves on from a failure
(`_on_failure`: recorded, then the task's `on_failure` route or the run's end) or a success
(recorded, then `_advance`: compose, print, branch; then checkpoint and `on_step_end`). The run
ends in `finish`, `fail`, a pause at a breakpoint, or an interruption. All the run leaves behind
(history, trace, checkpoints) goes through its `RunJournal`.

This is the product's hot path: the chain is compiled once (`Plan`), observers are called only
for the events they implement, and `_walk` binds what it uses per step to locals.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from taskengine.bounds import YIELD_EVERY_S
from taskengine.chain import TERM_END, TaskChainDefinition
from taskengine.datatypes import DataType, Tool
from taskengine.engine.context import run_context
from taskengine.engine.output import compose_output, print_output
from taskengine.engine.plan import too_many_steps
from taskengine.engine.record import ExecutionState, SimpleStackTrace
from taskengine.engine.results import RunResult
from taskengine.engine.retry import retry_delay
from taskengine.engine.schema import validate_output
from taskengine.errors import (
    TaskEngineError,
    TaskExecutionError,
    TaskTimeoutError,
    as_engine_error,
)

if TYPE_CHECKING:
    from taskengine.engine.env import SimpleEnv
    from taskengine.engine.events import RunInfo
    from taskengine.engine.journal import RunJournal
    from taskengine.engine.observers import Observers
    from taskengine.engine.plan import Plan, Step

__all__ = ["RunLoop"]

logger = logging.getLogger("taskengine.engine")


class StepFailed(Exception):
    """A step's task failed for good: its retries are spent, or its error is not worth a retry."""

    def __init__(self, error: TaskEngineError) -> None:
        super().__init__(error)
        self.error = error


class RunLoop:
    """One run: its variables, observers, journal and trace, and the loop that walks its steps."""

    __slots__ = (
        "breakpoints",
        "chain",
        "client_tools",
        "ctx",
        "env",
        "journal",
        "obs",
        "run",
        "stack",
        "step",
        "task_exec",
        "types",
        "variables",
    )

    def __init__(
        self,
        env: SimpleEnv,
        chain: TaskChainDefinition,
        journal: RunJournal,
        obs: Observers,
        *,
        breakpoints: set[str],
        client_tools: list[Tool] | None = None,
    ) -> None:
        self.env = env
        self.chain = chain
        self.journal = journal
        self.run: RunInfo = journal.run
        self.variables = journal.variables
        self.types = journal.types
        self.obs = obs
        self.breakpoints = breakpoints
        self.client_tools = client_tools
        self.task_exec: Any = None
        self.stack: Any = None
        self.ctx: Any = None
        #: the step being run (named in the error of a run that breaks off)
        self.step: Step | None = None

    # --- the run -----------------------------------------------------------------------------

    async def start(self, input: Any, input_type: DataType) -> None:
        """Tell subscribers the run starts; one that raises fails the run."""
        run = self.run
        try:
            for fn in self.obs.on_run_start:
                await fn(run=run, input=input, input_type=input_type)
            if run.root_span is not None:  # a tracing subscriber started this attempt's span
                await self.journal.attempt_traced()
        except Exception as raw:
            exc = as_engine_error(raw).with_context(
                chain_id=run.chain_id or None, run_id=run.run_id
            )
            await self.fail(exc)
            if exc is raw:
                raise
            raise exc from raw

    async def drive(
        self,
        plan: Plan,
        current: str,
        seq: int,
        *,
        skip_break: str | None = None,
        start_attempt: int = 0,
    ) -> RunResult:
        """Run from task `current` (after `seq` steps) to the run's end or a breakpoint."""
        self.task_exec = self.env.executor.task_exec
        self._open_trace()
        self.ctx = run_context(
            self.run, self.chain, self.variables, self.types, self.client_tools, self.obs
        )
        await self._prepare_executor()
        heartbeat = self.journal.start_heartbeat()
        try:
            paused = await self._walk(plan, current, seq, skip_break, start_attempt)
        except Exception as raw:
            # A subscriber or callback that raises must not leave the run "running" with its lease held.
            exc = await self._broken_off(raw)
            if exc is raw:
                raise
            raise exc from raw
        except asyncio.CancelledError:
            await self._interrupted()
            raise
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        if paused is not None:
            return paused
        if self.stack is not None:
            self.stack.set_current_state(
                ExecutionState(dict(self.variables), dict(self.types), None)
            )
        return await self.finish()

    async def _walk(
        self,
        plan: Plan,
        current: str | None,
        seq: int,
        skip_break: str | None,
        attempts_done: int,
    ) -> RunResult | None:
        """Run steps until the run ends (None) or stops at a breakpoint (its paused result).

        `attempts_done`: attempts a resumed run already made at its first step.
        """
        steps = plan.steps
        max_steps, capped = plan.step_limit(self.env.max_steps_cap)
        ctx, run = self.ctx, self.run
        journal = self.journal
        durable, record = journal.durable, journal.record
        take_input, attempt, advance = self._take_input, self._attempt, self._advance
        step_end = self.obs.on_step_end
        variables, types = self.variables, self.types
        pausable = bool(self.breakpoints) or self.stack is not None
        yielded_at = perf_counter()
        while current is not None:
            step = self.step = steps[current]
            if pausable and current != skip_break and self._breaks_at(current):
                return await self._pause(step, seq)
            skip_break = None
            if seq >= max_steps:
                raise too_many_steps(journal.history, current, max_steps, capped)
            seq += 1
            ctx.seq = seq
            if step.input_var or step.prompt is not None:
                value, vtype = take_input(step)
            else:  # the common case, without a call
                value = variables["previous_output"]
                vtype = types["previous_output"]
            started = perf_counter()
            if started - yielded_at >= YIELD_EVERY_S:
                # handlers that never await I/O must not keep the server from its other requests
                await asyncio.sleep(0)
                yielded_at = started = perf_counter()
            try:
                out, otype, teval = await attempt(step, value, vtype, attempts_done)
            except StepFailed as failed:
                error = failed.error
                attempts_done = 0  # only a resumed run's first step has attempts behind it
            else:
                attempts_done = 0
                unit = record(step, value, vtype, started, ctx, out, otype, teval)
                nxt = advance(step, out, otype, teval)
                if durable:
                    await journal.step_succeeded(seq, step, unit, nxt)
                if step_end:
                    for fn in step_end:
                        await fn(run=run, step=unit)
                current = nxt
                continue
            current = await self._on_failure(step, value, vtype, started, error)
        return None

    # --- the phases of a step ----------------------------------------------------------------

    def _take_input(self, step: Step) -> tuple[Any, DataType]:
        """The step's input: its `input_var` or the previous output; its prompt when it has one."""
        if step.input_var:
            try:
                value = self.variables[step.input_var]
            except KeyError:
                raise TaskExecutionError(
                    f"input_var {step.input_var!r} is not set yet (has that task run on this path?)",
                    task_id=step.id,
                    field="input_var",
                ) from None
            vtype = self.types[step.input_var]
        else:
            value = self.variables["previous_output"]
            vtype = self.types["previous_output"]
        if step.prompt is not None:
            value = step.prompt.render(self.variables, task_id=step.id, field="prompt_template")
            vtype = DataType.STRING
        return value, vtype

    async def _attempt(
        self, step: Step, value: Any, vtype: DataType, attempt: int
    ) -> tuple[Any, DataType, str]:
        """Run the step's task until it succeeds, retrying as allowed; else raise `StepFailed`.

        `attempt` counts the attempts already made (by a resumed run, at its first step).
        """
        ctx, task_exec, step_start = self.ctx, self.task_exec, self.obs.on_step_start
        ctx.timeout = step.timeout
        while True:
            attempt += 1
            ctx.attempt = attempt
            ctx.step_meta = None
            if step_start:
                for fn in step_start:
                    await fn(run=self.run, task_id=step.id, handler=step.handler, attempt=attempt)
            try:
                if step.timeout is None:
                    result = await task_exec(ctx, step.task, value, vtype)
                else:
                    try:
                        async with asyncio.timeout(step.timeout):
                            result = await task_exec(ctx, step.task, value, vtype)
                    except TimeoutError:
                        raise TaskTimeoutError(
                            f"timed out after {step.task.timeout}", task_id=step.id, field="timeout"
                        ) from None
                out, otype, teval = result  # anything but three values fails the attempt
                if step.output_schema is not None:
                    validate_output(step, out)
                return out, otype, teval
            except TaskEngineError as exc:
                error = exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = TaskExecutionError(f"{type(exc).__name__}: {exc}", task_id=step.id)
                error.__cause__ = exc
            if attempt > step.retries or not error.retryable:
                raise StepFailed(error)
            await self._before_retry(step, attempt, error)

    async def _before_retry(self, step: Step, attempt: int, error: TaskEngineError) -> None:
        """Log and announce the failed attempt, checkpoint it, and wait out the backoff."""
        env, run = self.env, self.run
        delay = retry_delay(attempt, error, step, self.chain, env.retry_base, env.retry_max)
        error.with_context(chain_id=self.chain.id or None, task_id=step.id, run_id=run.run_id)
        logger.warning(
            "task %s attempt %d failed (%s); retrying in %.2fs",
            step.id,
            attempt,
            error,
            delay,
            extra={"run_id": run.run_id, "chain_id": run.chain_id, "task_id": step.id},
        )
        for fn in self.obs.on_retry:
            await fn(run=run, task_id=step.id, attempt=attempt, error=error, delay_s=delay)
        if self.journal.durable:
            await self.journal.retrying(self.ctx.seq, step.id, attempt)
        await asyncio.sleep(delay)

    async def _on_failure(
        self, step: Step, value: Any, vtype: DataType, started: float, error: TaskEngineError
    ) -> str | None:
        """Record the failed step; go on at its `on_failure` task, or raise `error`."""
        run, journal, seq = self.run, self.journal, self.ctx.seq
        error.with_context(chain_id=self.chain.id or None, task_id=step.id, run_id=run.run_id)
        transition = getattr(error, "transition", "")
        unit = journal.record(
            step, value, vtype, started, self.ctx, None, DataType.NIL, transition, str(error)
        )
        for fn in self.obs.on_error:
            await fn(run=run, task_id=step.id, error=error)
        for fn in self.obs.on_step_end:
            await fn(run=run, step=unit)
        target = step.on_failure
        if target is None:
            if journal.durable:
                await journal.step_failed(seq, unit, error)
            raise error
        self.variables["last_error"] = str(error)
        self.types["last_error"] = DataType.STRING
        current = None if target == TERM_END else target
        if journal.durable:
            await journal.step_failed_over(seq, unit, error, current)
        return current

    def _advance(self, step: Step, out: Any, otype: DataType, teval: str) -> str | None:
        """Store the step's output (composed, when it asks), print, and pick the next task."""
        if step.compose is not None:  # Go: compose merges the task's output
            out, otype = compose_output(step, out, otype, self.variables, self.types)
        variables, types, current = self.variables, self.types, step.id
        variables[current] = out
        types[current] = otype
        variables["previous_output"] = out
        types["previous_output"] = otype
        if step.print is not None:
            print_output(
                self.env.print_fn, step.print.render(variables, task_id=current, field="print")
            )
        return step.next_task(teval)

    def _breaks_at(self, task_id: str) -> bool:
        """Whether the run has a breakpoint before `task_id` (its own, or set on its trace)."""
        stack = self.stack
        return task_id in self.breakpoints or (stack is not None and stack.has_breakpoint(task_id))

    # --- before the first step ---------------------------------------------------------------

    def _open_trace(self) -> None:
        """Start the inspector's trace of this run, with the run's breakpoints set on it."""
        inspector = self.env.inspector
        stack = self.stack = inspector.start() if inspector is not None else None
        if stack is not None:
            for point in self.breakpoints:
                stack.set_breakpoint(point)
            self.journal.record_step = stack.record_step

    async def _prepare_executor(self) -> None:
        """Let the executor set the run up (resolve tools …); its error fails the run."""
        prepare = getattr(self.env.executor, "prepare_run", None)
        if prepare is None:
            return
        try:
            await prepare(self.ctx)
        except TaskEngineError as exc:
            exc.with_context(chain_id=self.chain.id or None, run_id=self.run.run_id)
            await self.fail(exc)
            raise

    # --- how a run ends ----------------------------------------------------------------------

    async def finish(self) -> RunResult:
        """The run succeeded: its output is the last step's."""
        run = self.run
        output = self.variables.get("previous_output")
        output_type = self.types.get("previous_output", DataType.ANY)
        await self.journal.finished(output, output_type)
        for fn in self.obs.on_run_end:
            await fn(
                run=run, status="succeeded", output=output, output_type=output_type, error=None
            )
        return self._result("succeeded", output, output_type)

    async def fail(self, error: TaskEngineError) -> None:
        """The run failed with `error`: record it and tell subscribers."""
        await self.journal.failed(error)
        for fn in self.obs.on_run_end:
            await fn(
                run=self.run, status="failed", output=None, output_type=DataType.NIL, error=error
            )

    async def _pause(self, step: Step, seq: int) -> RunResult:
        """Stop before `step` (a breakpoint); `resume` goes on from there."""
        if self.stack is not None and isinstance(self.stack, SimpleStackTrace):
            self.stack.set_current_state(
                ExecutionState(dict(self.variables), dict(self.types), step.task)
            )
        await self.journal.paused(seq, step.id)
        for fn in self.obs.on_run_end:
            await fn(
                run=self.run, status="paused", output=None, output_type=DataType.NIL, error=None
            )
        output = self.variables.get("previous_output")
        output_type = self.types.get("previous_output", DataType.ANY)
        return self._result("paused", output, output_type, paused_at=step.id)

    async def _broken_off(self, raw: Exception) -> TaskEngineError:
        """Fail the run for `raw`, raised out of its loop; the error carries the run's result."""
        exc = as_engine_error(raw)
        exc.with_context(
            chain_id=self.chain.id or None,
            run_id=self.run.run_id,
            task_id=self.step.id if self.step is not None else None,
        )
        exc.run_result = self._result("failed", None, DataType.NIL, error=exc)
        await self.fail(exc)
        return exc

    async def _interrupted(self) -> None:
        """The run was cancelled: record it and tell subscribers (the cancel goes on)."""
        await self.journal.interrupted()
        for fn in self.obs.on_run_end:
            await fn(
                run=self.run,
                status="interrupted",
                output=None,
                output_type=DataType.NIL,
                error=None,
            )

    def _result(
        self,
        status: str,
        output: Any,
        output_type: DataType,
        *,
        error: TaskEngineError | None = None,
        paused_at: str | None = None,
    ) -> RunResult:
        """The run's result so far, with its history and totals."""
        run = self.run
        return RunResult(
            run_id=run.run_id,
            chain_id=run.chain_id,
            status=status,
            output=output,
            output_type=output_type,
            state=self.journal.history,
            error=error,
            totals=run.totals,
            paused_at=paused_at,
        )
