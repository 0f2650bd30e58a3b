"""SimpleEnv: the state-machine loop that runs a chain.

For each task: pick its input (`input_var` or the previous output), compose, render the prompt,
execute with timeout and retries, record a `CapturedStateUnit`, checkpoint, and follow the first
matching transition. The loop is the product's hot path: a chain is compiled once per run into
slots objects, and observers are called only for the events they implement.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from time import perf_counter, time
from typing import Any, Protocol

from taskengine.chain import (
    TERM_END,
    TaskChainDefinition,
    TaskDefinition,
    load_chain,
    parse_duration,
)
from taskengine.compose import compose_values
from taskengine.datatypes import DataType, Tool, convert_to_type, to_display, to_jsonable
from taskengine.errors import (
    ConflictError,
    DataConversionError,
    DefinitionError,
    MaxStepsExceededError,
    RunLeaseError,
    StepValidationError,
    TaskEngineError,
    TaskExecutionError,
    TaskTimeoutError,
)
from taskengine.events import LLMCall, RunInfo, RunObserver, overridden
from taskengine.executor import ExecContext, SimpleExec, TaskExecutorProtocol
from taskengine.inspector import CapturedStateUnit, ExecutionState, SimpleStackTrace
from taskengine.templates import Template, compile_template
from taskengine.transitions import OPERATORS

__all__ = ["EnvExecutor", "EventCallback", "RunResult", "SimpleEnv"]

logger = logging.getLogger("taskengine.engine")
print_logger = logging.getLogger("taskengine.print")

EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


class EnvExecutor(Protocol):
    """Runs whole chains (Go: `EnvExecutor`); `SimpleEnv` is the implementation."""

    async def exec_env(
        self, chain: Any, input: Any, data_type: DataType | str = ..., **options: Any
    ) -> RunResult: ...


class RunResult:
    """The outcome of a run; unpacks like the seed's `(output, output_type, state)`."""

    __slots__ = (
        "chain_id",
        "error",
        "output",
        "output_type",
        "paused_at",
        "run_id",
        "state",
        "status",
        "totals",
    )

    def __init__(
        self,
        *,
        run_id: str,
        chain_id: str,
        status: str,
        output: Any,
        output_type: DataType,
        state: list[CapturedStateUnit],
        error: TaskEngineError | None = None,
        totals: dict[str, float] | None = None,
        paused_at: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.chain_id = chain_id
        self.status = status
        self.output = output
        self.output_type = output_type
        self.state = state
        self.error = error
        self.totals = totals or {}
        self.paused_at = paused_at

    def __iter__(self) -> Iterator[Any]:
        return iter((self.output, self.output_type, self.state))

    def to_dict(self) -> dict[str, Any]:
        """The pinned `--json` shape: runId, output, outputType, state, plus status and totals."""
        out: dict[str, Any] = {
            "runId": self.run_id,
            "chainId": self.chain_id,
            "status": self.status,
            "output": to_jsonable(self.output),
            "outputType": self.output_type.type_name,
            "state": [unit.to_dict() for unit in self.state],
            "totals": self.totals,
        }
        if self.paused_at:
            out["pausedAt"] = self.paused_at
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


class _Step:
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
            raise TaskExecutionError(
                f"no transition branch matches {shown!r} and there is no default branch",
                task_id=self.id,
                field="transition.branches",
            )
        return None if (not goto or goto == TERM_END) else goto


class _Plan:
    __slots__ = ("chain", "first", "max_steps", "steps")

    def __init__(
        self,
        chain: TaskChainDefinition,
        *,
        max_retries: int | None = None,
        max_steps_default: int | None = None,
    ) -> None:
        self.chain = chain
        self.steps = {t.id: _Step(t) for t in chain.tasks}
        if max_retries is not None:
            for step in self.steps.values():
                step.retries = min(step.retries, max_retries)
        self.first = chain.tasks[0].id
        explicit = "max_steps" in chain.model_fields_set
        self.max_steps = chain.max_steps if explicit or not max_steps_default else max_steps_default


class _Observers:
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


class _CallbackObserver(RunObserver):
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


class SimpleEnv:
    """Runs chains. One instance serves many concurrent runs.

    Args:
        executor: runs single tasks (default: a `SimpleExec` over `resolver` and `hooks`).
        observers: subscribers to run events (activity tracking, metrics, streaming …).
        inspector: creates a stack trace per run (breakpoints, history).
        store: a `RunStore`; when given, every step is checkpointed and runs can resume.
        retry_base / retry_max: exponential backoff between retries, in seconds (full jitter).
        print_fn: receives each task's rendered `print` (default: the `taskengine.print` logger).
    """

    def __init__(
        self,
        executor: TaskExecutorProtocol | None = None,
        *,
        resolver: Any = None,
        hooks: Any = None,
        observers: Iterable[RunObserver] = (),
        inspector: Any = None,
        store: Any = None,
        retry_base: float = 0.1,
        retry_max: float = 10.0,
        print_fn: Callable[[str], None] | None = None,
        lease_ttl: float = 60.0,
        max_input_bytes: int | None = None,
        max_steps_default: int | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.executor = (
            executor if executor is not None else SimpleExec(resolver=resolver, hooks=hooks)
        )
        self.observers = list(observers)
        self.inspector = inspector
        self.store = store
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.print_fn = print_fn
        self.lease_ttl = lease_ttl
        self.max_input_bytes = max_input_bytes
        self.max_steps_default = max_steps_default
        self.max_retries = max_retries
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # --- public entry points -------------------------------------------------------------

    async def exec_env(
        self,
        chain: TaskChainDefinition | dict[str, Any] | str,
        input: Any,
        data_type: DataType | str = DataType.STRING,
        *,
        run_id: str | None = None,
        request_id: str | None = None,
        breakpoints: Iterable[str] = (),
        on_event: EventCallback | None = None,
        client_tools: list[Tool] | None = None,
    ) -> RunResult:
        """Run `chain` on `input` (converted to `data_type`) and return its `RunResult`.

        A failing run raises its `TaskEngineError` (with run id, chain and task filled in);
        a run stopped at a breakpoint returns with status `paused`.
        """
        if not isinstance(chain, TaskChainDefinition):
            chain = load_chain(chain, extra_handlers=self._custom_handlers())
        data_type = DataType.from_string(data_type)
        unknown = sorted(set(breakpoints) - {t.id for t in chain.tasks})
        if unknown:
            raise DefinitionError(
                f"breakpoint on unknown task {unknown[0]!r}; tasks: {', '.join(t.id for t in chain.tasks)}",
                chain_id=chain.id or None,
                field="breakpoints",
            )
        try:
            value = convert_to_type(input, data_type)
            if self.max_input_bytes:
                _check_input_size(value, self.max_input_bytes)
        except TaskEngineError as exc:
            raise exc.with_context(chain_id=chain.id or None, field="input") from None
        run = RunInfo(
            run_id=run_id or uuid.uuid4().hex,
            chain_id=chain.id,
            request_id=request_id or "",
            started_at=time(),
        )
        variables: dict[str, Any] = {"input": value, "previous_output": value}
        types: dict[str, DataType] = {"input": data_type, "previous_output": data_type}
        owner = self._lease_token()
        if self.store is not None:
            await self._create_run(run, chain, value, data_type, list(breakpoints), owner)
        observers = self._observers(on_event)
        for fn in observers.on_run_start:
            await fn(run=run, input=value, input_type=data_type)
        return await self._drive(
            self._plan(chain),
            run,
            variables,
            types,
            chain.tasks[0].id,
            [],
            0,
            set(breakpoints),
            observers,
            client_tools,
            skip_break=None,
            owner=owner,
        )

    async def resume(
        self,
        run_id: str,
        *,
        set_vars: dict[str, Any] | None = None,
        on_event: EventCallback | None = None,
        breakpoints: Iterable[str] | None = None,
    ) -> RunResult:
        """Continue a run from its last checkpoint (after a crash, a pause, or a failure).

        Holds a lease while running, so a second resumer is told the run is already being resumed.
        `set_vars` changes variables first (a person in the loop editing a paused run).
        """
        if self.store is None:
            raise TaskExecutionError("resume needs a run store (SimpleEnv(store=…))", run_id=run_id)
        store = self.store
        record = await store.get_run(run_id)
        if record.status == "succeeded" and set_vars:
            raise ConflictError(
                f"run {run_id} already succeeded; there is nothing to resume with changed variables",
                run_id=run_id,
            )
        if record.status == "succeeded":
            state = await self._stored_history(run_id)
            output_type = DataType.from_string(record.output_type or "any")
            return RunResult(
                run_id=run_id,
                chain_id=record.chain_id,
                status="succeeded",
                output=convert_to_type(record.output, output_type),
                output_type=output_type,
                state=state,
                totals=dict(record.totals or {}),
            )
        owner = self._lease_token()
        await self._take_lease(record, owner)
        try:
            chain = load_chain(record.chain, extra_handlers=self._custom_handlers())
            if set_vars:
                await store.set_variables(
                    run_id,
                    {k: (_type_of(v).type_name, to_jsonable(v)) for k, v in set_vars.items()},
                )
            saved = await store.load_state(run_id)
            variables: dict[str, Any] = {}
            types: dict[str, DataType] = {}
            for name, value in saved.variables.items():
                dtype = DataType.from_string(saved.var_types.get(name, "any"))
                variables[name] = convert_to_type(value, dtype)
                types[name] = dtype
            history = [CapturedStateUnit.from_dict(s) for s in saved.history]
            last_ok = next(
                (u.task_id for u in reversed(history) if not u.error and u.task_id in variables),
                None,
            )
            source = last_ok or "input"
            variables["previous_output"] = variables.get(source)
            types["previous_output"] = types.get(source, DataType.ANY)
            next_task = saved.next_task
            run = RunInfo(
                run_id=run_id,
                chain_id=record.chain_id,
                request_id=record.request_id or "",
                started_at=time(),
                totals=dict(record.totals or {}),
            )
            stored_breaks = (record.meta or {}).get("breakpoints", [])
            points = set(breakpoints if breakpoints is not None else stored_breaks)
            observers = self._observers(on_event)
            for fn in observers.on_run_start:
                await fn(
                    run=run,
                    input=variables.get("input"),
                    input_type=types.get("input", DataType.ANY),
                )
            if next_task is None:
                return await self._finish(run, variables, types, history, observers, owner)
            retry_state = saved.retry_state or {}
            return await self._drive(
                self._plan(chain),
                run,
                variables,
                types,
                next_task,
                history,
                saved.seq,
                points,
                observers,
                None,
                skip_break=next_task if record.status == "paused" else None,
                start_attempt=int(retry_state.get("attempt", 0))
                if retry_state.get("task") == next_task
                else 0,
                owner=owner,
            )
        finally:
            await store.release_lease(run_id, owner)

    def _lease_token(self) -> str:
        """A lease owner for one run or resume call: host and pid (to spot dead owners), then unique."""
        return f"{self.owner}:{uuid.uuid4().hex[:8]}"

    async def _take_lease(self, record: Any, owner: str) -> None:
        """Take the run's lease; a lease held by a process of this host that no longer exists is taken over."""
        try:
            await self.store.acquire_lease(record.run_id, owner, self.lease_ttl)
        except RunLeaseError:
            holder = record.lease_owner or ""
            if not _owner_is_dead(holder):
                raise
            logger.warning(
                "run %s: taking over the lease of %s, which is no longer running",
                record.run_id,
                holder,
            )
            await self.store.acquire_lease(record.run_id, owner, self.lease_ttl, replacing=holder)

    # --- the loop ----------------------------------------------------------------------------

    def _plan(self, chain: TaskChainDefinition) -> _Plan:
        return _Plan(chain, max_retries=self.max_retries, max_steps_default=self.max_steps_default)

    def _custom_handlers(self) -> tuple[str, ...]:
        """Handler names the executor adds to the built-in ones (step-style handlers …)."""
        return tuple(getattr(self.executor, "handler_names", ()))

    def _observers(self, on_event: EventCallback | None) -> _Observers:
        if on_event is None:
            cached = getattr(self, "_cached_observers", None)
            if (
                cached is None
                or cached[0] is not self.observers
                or cached[1] != len(self.observers)
            ):
                cached = (self.observers, len(self.observers), _Observers(self.observers))
                self._cached_observers = cached
            return cached[2]
        return _Observers([*self.observers, _CallbackObserver(on_event)])

    async def _drive(
        self,
        plan: _Plan,
        run: RunInfo,
        variables: dict[str, Any],
        types: dict[str, DataType],
        current: str | None,
        history: list[CapturedStateUnit],
        seq: int,
        breakpoints: set[str],
        obs: _Observers,
        client_tools: list[Tool] | None,
        *,
        skip_break: str | None,
        start_attempt: int = 0,
        owner: str,
    ) -> RunResult:
        chain = plan.chain
        store = self.store
        stack = self.inspector.start() if self.inspector is not None else None
        if stack is not None:
            for point in breakpoints:
                stack.set_breakpoint(point)
        ctx = ExecContext(
            run=run, chain=chain, variables=variables, types=types, client_tools=client_tools
        )
        if obs.on_llm_delta:
            ctx.emit_delta = self._delta_emitter(run, obs)
        ctx.emit_llm_call = self._llm_call_emitter(run, obs)
        task_exec = self.executor.task_exec
        prepare = getattr(self.executor, "prepare_run", None)
        if prepare is not None:
            try:
                await prepare(ctx)
            except TaskEngineError as exc:
                exc.with_context(chain_id=chain.id or None, run_id=run.run_id)
                await self._fail(run, exc, obs, owner)
                raise
        debug = chain.debug
        max_steps = plan.max_steps
        steps = plan.steps
        record_step = stack.record_step if stack is not None else None
        step_end = obs.on_step_end
        step_start = obs.on_step_start
        first_attempt = start_attempt
        step: _Step | None = None
        heartbeat = (
            asyncio.create_task(self._heartbeat(run.run_id, owner)) if store is not None else None
        )
        try:
            while current is not None:
                step = steps[current]
                if (
                    current in breakpoints or (stack is not None and stack.has_breakpoint(current))
                ) and current != skip_break:
                    return await self._pause(
                        run, step, variables, types, history, seq, stack, obs, owner
                    )
                skip_break = None
                if seq >= max_steps:
                    tail = " → ".join(u.task_id for u in history[-6:])
                    raise MaxStepsExceededError(
                        f"run stopped after max_steps={max_steps} steps (a loop that never ends?); "
                        f"last steps: {tail}",
                        task_id=current,
                        field="max_steps",
                    )
                seq += 1
                ctx.seq = seq
                # -- input
                if step.input_var:
                    try:
                        value = variables[step.input_var]
                    except KeyError:
                        raise TaskExecutionError(
                            f"input_var {step.input_var!r} is not set yet (has that task run on this path?)",
                            task_id=current,
                            field="input_var",
                        ) from None
                    vtype = types[step.input_var]
                else:
                    value = variables["previous_output"]
                    vtype = types["previous_output"]
                if step.compose is not None:
                    value, vtype = self._compose(step, value, vtype, variables, types)
                if step.prompt is not None:
                    value = step.prompt.render(variables, task_id=current, field="prompt_template")
                    vtype = DataType.STRING
                # -- execute, with retries
                started = perf_counter()
                attempt = first_attempt
                first_attempt = 0
                ctx.timeout = step.timeout
                while True:
                    attempt += 1
                    ctx.attempt = attempt
                    ctx.step_meta = None
                    if step_start:
                        for fn in step_start:
                            await fn(
                                run=run, task_id=current, handler=step.handler, attempt=attempt
                            )
                    try:
                        if step.timeout is None:
                            out, otype, teval = await task_exec(ctx, step.task, value, vtype)
                        else:
                            try:
                                async with asyncio.timeout(step.timeout):
                                    out, otype, teval = await task_exec(
                                        ctx, step.task, value, vtype
                                    )
                            except TimeoutError:
                                raise TaskTimeoutError(
                                    f"timed out after {step.task.timeout}",
                                    task_id=current,
                                    field="timeout",
                                ) from None
                        if step.output_schema is not None:
                            _validate_output(step, out)
                        error = None
                        break
                    except TaskEngineError as exc:
                        error = exc
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        error = TaskExecutionError(f"{type(exc).__name__}: {exc}", task_id=current)
                        error.__cause__ = exc
                    if attempt > step.retries or not error.retryable:
                        break
                    delay = self._backoff(attempt, chain)
                    error.with_context(
                        chain_id=chain.id or None, task_id=current, run_id=run.run_id
                    )
                    logger.warning(
                        "task %s attempt %d failed (%s); retrying in %.2fs",
                        current,
                        attempt,
                        error,
                        delay,
                    )
                    for fn in obs.on_retry:
                        await fn(
                            run=run, task_id=current, attempt=attempt, error=error, delay_s=delay
                        )
                    if store is not None:
                        await store.checkpoint(
                            run.run_id,
                            seq=seq - 1,
                            step=None,
                            step_status=None,
                            vars_delta={},
                            next_task=current,
                            status="running",
                            retry_state={"task": current, "attempt": attempt},
                            owner=owner,
                        )
                    await asyncio.sleep(delay)
                duration_ms = (perf_counter() - started) * 1000.0
                if error is not None:
                    error.with_context(
                        chain_id=chain.id or None, task_id=current, run_id=run.run_id
                    )
                    unit = CapturedStateUnit(
                        current,
                        step.handler,
                        vtype,
                        DataType.NIL,
                        "",
                        duration_ms,
                        str(error),
                        to_display(value) if debug else "",
                        "",
                        step.input_var,
                        _meta(ctx, attempt),
                    )
                    history.append(unit)
                    if record_step is not None:
                        record_step(unit)
                    for fn in obs.on_error:
                        await fn(run=run, task_id=current, error=error)
                    for fn in step_end:
                        await fn(run=run, step=unit)
                    target = step.on_failure
                    if target is None:
                        if store is not None:
                            await store.checkpoint(
                                run.run_id,
                                seq=seq,
                                step=unit.to_dict(),
                                step_status="failed",
                                vars_delta={},
                                next_task=current,
                                status="failed",
                                owner=owner,
                            )
                        raise error
                    variables["last_error"] = str(error)
                    types["last_error"] = DataType.STRING
                    current = None if target == TERM_END else target
                    if store is not None:
                        await store.checkpoint(
                            run.run_id,
                            seq=seq,
                            step=unit.to_dict(),
                            step_status="failed",
                            vars_delta={"last_error": ["string", str(error)]},
                            next_task=current,
                            status="running",
                            owner=owner,
                        )
                    continue
                # -- success: record, print, branch, checkpoint
                variables[current] = out
                types[current] = otype
                variables["previous_output"] = out
                types["previous_output"] = otype
                unit = CapturedStateUnit(
                    current,
                    step.handler,
                    vtype,
                    otype,
                    teval,
                    duration_ms,
                    None,
                    to_display(value) if debug else "",
                    to_display(out) if debug else "",
                    step.input_var,
                    _meta(ctx, attempt),
                )
                history.append(unit)
                if record_step is not None:
                    record_step(unit)
                if step.print is not None:
                    self._print(step.print.render(variables, task_id=current, field="print"))
                nxt = step.next_task(teval)
                if store is not None:
                    delta: dict[str, Any] = {current: [otype.type_name, to_jsonable(out)]}
                    if step.compose is not None:
                        name = f"{current}_composed"
                        delta[name] = [types[name].type_name, to_jsonable(variables[name])]
                    await store.checkpoint(
                        run.run_id,
                        seq=seq,
                        step=unit.to_dict(),
                        step_status="succeeded",
                        vars_delta=delta,
                        next_task=nxt,
                        status="running",
                        totals=run.totals or None,
                        owner=owner,
                    )
                if step_end:
                    for fn in step_end:
                        await fn(run=run, step=unit)
                current = nxt
        except TaskEngineError as exc:
            exc.with_context(
                chain_id=chain.id or None,
                run_id=run.run_id,
                task_id=step.id if step is not None else None,
            )
            exc.run_result = RunResult(
                run_id=run.run_id,
                chain_id=run.chain_id,
                status="failed",
                output=None,
                output_type=DataType.NIL,
                state=history,
                error=exc,
                totals=run.totals,
            )
            await self._fail(run, exc, obs, owner)
            raise
        except asyncio.CancelledError:
            if store is not None:
                await _quietly(
                    store.finish_run(
                        run.run_id,
                        status="interrupted",
                        output=None,
                        output_type=None,
                        error={"message": "cancelled"},
                        totals=run.totals,
                    )
                )
            for fn in obs.on_run_end:
                await fn(
                    run=run, status="interrupted", output=None, output_type=DataType.NIL, error=None
                )
            raise
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        if stack is not None:
            stack.set_current_state(ExecutionState(dict(variables), dict(types), None))
        return await self._finish(run, variables, types, history, obs, owner)

    # --- pieces of the loop -----------------------------------------------------------------

    def _compose(
        self,
        step: _Step,
        value: Any,
        vtype: DataType,
        variables: dict[str, Any],
        types: dict[str, DataType],
    ) -> tuple[Any, DataType]:
        spec = step.compose
        assert spec is not None
        try:
            other = variables[spec.with_var]
        except KeyError:
            raise TaskExecutionError(
                f"compose.with_var {spec.with_var!r} is not set yet",
                task_id=step.id,
                field="compose.with_var",
            ) from None
        value, vtype = compose_values(
            value, vtype, other, types[spec.with_var], spec.strategy, task_id=step.id
        )
        variables[f"{step.id}_composed"] = value
        types[f"{step.id}_composed"] = vtype
        return value, vtype

    async def _heartbeat(self, run_id: str, owner: str) -> None:
        """Renew this process's lease while a (possibly long) step runs; checkpoints renew it too."""
        interval = max(self.lease_ttl / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.renew_lease(run_id, owner, self.lease_ttl)
            except TaskEngineError as exc:
                logger.warning("run %s: could not renew its lease: %s", run_id, exc)
                return

    def _backoff(self, attempt: int, chain: TaskChainDefinition) -> float:
        base, cap, jitter = self.retry_base, self.retry_max, True
        policy = chain.retry_policy
        if policy is not None:
            base, cap, jitter = (
                parse_duration(policy.base),
                parse_duration(policy.max),
                policy.jitter,
            )
        ceiling = min(cap, base * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling) if jitter else ceiling

    def _print(self, text: str) -> None:
        if self.print_fn is not None:
            self.print_fn(text)
        else:
            print_logger.info(text)

    def _delta_emitter(
        self, run: RunInfo, obs: _Observers
    ) -> Callable[[str, str], Awaitable[None]]:
        async def emit(task_id: str, delta: str) -> None:
            for fn in obs.on_llm_delta:
                await fn(run=run, task_id=task_id, delta=delta)

        return emit

    def _llm_call_emitter(
        self, run: RunInfo, obs: _Observers
    ) -> Callable[[str, LLMCall], Awaitable[None]]:
        async def emit(task_id: str, call: LLMCall) -> None:
            totals = run.totals
            totals["llm_calls"] = totals.get("llm_calls", 0) + 1
            totals["input_tokens"] = totals.get("input_tokens", 0) + call.input_tokens
            totals["output_tokens"] = totals.get("output_tokens", 0) + call.output_tokens
            totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
            totals["llm_ms"] = round(totals.get("llm_ms", 0.0) + call.latency_ms, 3)
            for fn in obs.on_llm_call:
                await fn(run=run, task_id=task_id, call=call)
            if call.cost is not None:
                totals["cost"] = totals.get("cost", 0.0) + call.cost

        return emit

    async def _pause(
        self,
        run: RunInfo,
        step: _Step,
        variables: dict[str, Any],
        types: dict[str, DataType],
        history: list[CapturedStateUnit],
        seq: int,
        stack: Any,
        obs: _Observers,
        owner: str,
    ) -> RunResult:
        if stack is not None and isinstance(stack, SimpleStackTrace):
            stack.set_current_state(ExecutionState(dict(variables), dict(types), step.task))
        if self.store is not None:
            await self.store.checkpoint(
                run.run_id,
                seq=seq,
                step=None,
                step_status=None,
                vars_delta={},
                next_task=step.id,
                status="paused",
                owner=owner,
            )
            await self.store.release_lease(run.run_id, owner)
        for fn in obs.on_run_end:
            await fn(run=run, status="paused", output=None, output_type=DataType.NIL, error=None)
        return RunResult(
            run_id=run.run_id,
            chain_id=run.chain_id,
            status="paused",
            output=variables.get("previous_output"),
            output_type=types.get("previous_output", DataType.ANY),
            state=history,
            totals=run.totals,
            paused_at=step.id,
        )

    async def _finish(
        self,
        run: RunInfo,
        variables: dict[str, Any],
        types: dict[str, DataType],
        history: list[CapturedStateUnit],
        obs: _Observers,
        owner: str | None = None,
    ) -> RunResult:
        output = variables.get("previous_output")
        output_type = types.get("previous_output", DataType.ANY)
        if self.store is not None:
            await self.store.finish_run(
                run.run_id,
                status="succeeded",
                output=to_jsonable(output),
                output_type=output_type.type_name,
                error=None,
                totals=run.totals,
                owner=owner,
            )
        for fn in obs.on_run_end:
            await fn(
                run=run, status="succeeded", output=output, output_type=output_type, error=None
            )
        return RunResult(
            run_id=run.run_id,
            chain_id=run.chain_id,
            status="succeeded",
            output=output,
            output_type=output_type,
            state=history,
            totals=run.totals,
        )

    async def _fail(
        self, run: RunInfo, error: TaskEngineError, obs: _Observers, owner: str | None = None
    ) -> None:
        # A run whose lease went to another process is theirs now: leave its record alone.
        if self.store is not None and not isinstance(error, RunLeaseError):
            await _quietly(
                self.store.finish_run(
                    run.run_id,
                    status="failed",
                    output=None,
                    output_type=None,
                    error=error.to_dict(),
                    totals=run.totals,
                    owner=owner,
                )
            )
        for fn in obs.on_run_end:
            await fn(run=run, status="failed", output=None, output_type=DataType.NIL, error=error)

    async def _create_run(
        self,
        run: RunInfo,
        chain: TaskChainDefinition,
        value: Any,
        data_type: DataType,
        breakpoints: list[str],
        owner: str,
    ) -> None:
        from taskengine.store.base import RunRecord

        now = _utcnow()
        await self.store.create_run(
            RunRecord(
                run_id=run.run_id,
                chain_id=chain.id,
                status="running",
                created_at=now,
                updated_at=now,
                chain=chain.model_dump(mode="json", exclude_none=True),
                input=to_jsonable(value),
                input_type=data_type.type_name,
                request_id=run.request_id or None,
                meta={"breakpoints": breakpoints} if breakpoints else {},
                lease_owner=owner,
                next_task=chain.tasks[0].id,
            ),
            lease_ttl_s=self.lease_ttl,
        )

    async def _stored_history(self, run_id: str) -> list[CapturedStateUnit]:
        return [
            CapturedStateUnit.from_dict(row)
            for row in (await self.store.load_state(run_id)).history
        ]


def _check_input_size(value: Any, limit: int) -> None:
    from taskengine.datatypes import to_jsonable

    if isinstance(value, str):
        size = len(value.encode("utf-8"))
    else:
        import json

        size = len(json.dumps(to_jsonable(value), separators=(",", ":")).encode("utf-8"))
    if size > limit:
        raise DataConversionError(f"input is {size:,} bytes, over the limit of {limit:,} bytes")


def _owner_is_dead(holder: str) -> bool:
    """True when a lease holder (`host:pid:…`) is a process of this host that has exited."""
    parts = holder.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _meta(ctx: ExecContext, attempt: int) -> dict[str, Any] | None:
    meta = ctx.step_meta
    if attempt > 1:
        meta = dict(meta or {})
        meta["attempts"] = attempt
    return meta


def _validate_output(step: _Step, output: Any) -> None:
    import jsonschema

    try:
        jsonschema.validate(to_jsonable(output), step.output_schema)  # type: ignore[arg-type]
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


def _type_of(value: Any) -> DataType:
    if isinstance(value, bool):
        return DataType.BOOL
    if isinstance(value, int):
        return DataType.INT
    if isinstance(value, float):
        return DataType.FLOAT
    if isinstance(value, str):
        return DataType.STRING
    if value is None:
        return DataType.NIL
    return DataType.JSON


def _utcnow():
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:  # the run's own error matters more than a failed bookkeeping write
        logger.exception("could not record the end of a run")
