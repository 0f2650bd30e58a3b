"""SimpleEnv: the state-machine loop that runs a chain.

For each task: pick its input (`input_var` or the previous output), compose, render the prompt,
execute with timeout and retries, record a `CapturedStateUnit`, checkpoint, and follow the first
matching transition. The loop is the product's hot path: a chain is compiled once per run into
slots objects, and observers are called only for the events they implement.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from time import perf_counter, time
from typing import Any

from taskengine.bounds import LoopPacer, check_depth
from taskengine.chain import (
    TERM_END,
    TaskChainDefinition,
    load_chain,
    parse_duration,
)
from taskengine.compose import compose_values
from taskengine.datatypes import DataType, Tool, convert_to_type, to_display, to_jsonable
from taskengine.durable import (
    DEFAULT_LEASE_TTL,
    DurableRuns,
    failed_status,
    new_owner,
    record_quietly,
)
from taskengine.errors import (
    DataConversionError,
    DefinitionError,
    MaxStepsExceededError,
    TaskEngineError,
    TaskExecutionError,
    TaskTimeoutError,
    as_engine_error,
)
from taskengine.events import LLMCall, RunInfo, RunObserver
from taskengine.executor import ExecContext, SimpleExec, TaskExecutorProtocol
from taskengine.inspector import CapturedStateUnit, ExecutionState
from taskengine.plan import CallbackObserver, Observers, Plan, Step, validate_output
from taskengine.results import EnvExecutor, RunResult

__all__ = ["EnvExecutor", "EventCallback", "RunResult", "SimpleEnv"]

logger = logging.getLogger("taskengine.engine")
print_logger = logging.getLogger("taskengine.print")

EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


class SimpleEnv(DurableRuns):
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
        lease_ttl: float = DEFAULT_LEASE_TTL,
        max_input_bytes: int | None = None,
        max_steps_default: int | None = None,
        max_retries: int | None = None,
        max_steps_cap: int | None = None,
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
        #: no run takes more steps than this, whatever its chain says (`limits.max_steps_cap`)
        self.max_steps_cap = max_steps_cap
        self.owner = new_owner()

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
        chain = self._checked(chain)
        data_type = DataType.from_string(data_type)
        unknown = sorted(set(breakpoints) - {t.id for t in chain.tasks})
        if unknown:
            raise DefinitionError(
                f"breakpoint on unknown task {unknown[0]!r}; tasks: {', '.join(t.id for t in chain.tasks)}",
                chain_id=chain.id or None,
                field="breakpoints",
            )
        try:
            value = check_depth(convert_to_type(input, data_type), field="input")
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
        owner = self._lease_token() if self.store is not None else ""
        if self.store is not None:
            await self._create_run(run, chain, value, data_type, list(breakpoints), owner)
        observers = self._observers(on_event)
        try:
            for fn in observers.on_run_start:
                await fn(run=run, input=value, input_type=data_type)
        except Exception as raw:
            exc = as_engine_error(raw).with_context(chain_id=chain.id or None, run_id=run.run_id)
            await self._fail(run, exc, observers, owner)
            if exc is raw:
                raise
            raise exc from raw
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

    def _checked(self, chain: TaskChainDefinition | dict[str, Any] | str) -> TaskChainDefinition:
        """Load (or, for a definition object, lint once) the chain before anything runs."""
        handlers = self._custom_handlers()
        if not isinstance(chain, TaskChainDefinition):
            return load_chain(chain, extra_handlers=handlers)
        key = (id(chain), handlers)  # model_copy() shares this set: key on the object itself
        if key not in chain._linted:
            load_chain(chain, extra_handlers=handlers)  # raises ChainValidationError
            chain._linted.add(key)
        return chain

    def is_checked(self, chain: TaskChainDefinition) -> bool:
        """Whether `chain` was already linted for this executor (so a run starts without lint)."""
        return (id(chain), self._custom_handlers()) in chain._linted

    def _plan(self, chain: TaskChainDefinition) -> Plan:
        """The chain compiled for the loop, cached on the (immutable) chain for later runs."""
        key = (self.max_retries, self.max_steps_default)
        cache = chain._plans
        plan = cache.get(key)
        # model_copy() shares the cache dict with the original: only trust a plan built for this object
        if plan is None or plan.chain is not chain:
            plan = cache[key] = Plan(
                chain, max_retries=self.max_retries, max_steps_default=self.max_steps_default
            )
        return plan

    def _custom_handlers(self) -> tuple[str, ...]:
        """Handler names the executor adds to the built-in ones (step-style handlers …)."""
        return tuple(getattr(self.executor, "handler_names", ()))

    def _observers(self, on_event: EventCallback | None) -> Observers:
        if on_event is None:
            cached = getattr(self, "_cached_observers", None)
            if (
                cached is None
                or cached[0] is not self.observers
                or cached[1] != len(self.observers)
            ):
                cached = (self.observers, len(self.observers), Observers(self.observers))
                self._cached_observers = cached
            return cached[2]
        return Observers([*self.observers, CallbackObserver(on_event)])

    async def _drive(
        self,
        plan: Plan,
        run: RunInfo,
        variables: dict[str, Any],
        types: dict[str, DataType],
        current: str | None,
        history: list[CapturedStateUnit],
        seq: int,
        breakpoints: set[str],
        obs: Observers,
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
        capped = self.max_steps_cap is not None and self.max_steps_cap < max_steps
        if capped:
            max_steps = self.max_steps_cap
        pacer = LoopPacer()
        steps = plan.steps
        record_step = stack.record_step if stack is not None else None
        step_end = obs.on_step_end
        step_start = obs.on_step_start
        first_attempt = start_attempt
        step: Step | None = None
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
                if pacer.due():  # handlers that never await I/O must not starve the server
                    await asyncio.sleep(0)
                if seq >= max_steps:
                    tail = " → ".join(u.task_id for u in history[-6:])
                    which = (
                        f"limits.max_steps_cap={max_steps}" if capped else f"max_steps={max_steps}"
                    )
                    raise MaxStepsExceededError(
                        f"run stopped after {which} steps (a loop that never ends?); "
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
                            validate_output(step, out)
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
                    delay = _honour_retry_after(self._backoff(attempt, chain), error, step)
                    error.with_context(
                        chain_id=chain.id or None, task_id=current, run_id=run.run_id
                    )
                    logger.warning(
                        "task %s attempt %d failed (%s); retrying in %.2fs",
                        current,
                        attempt,
                        error,
                        delay,
                        extra={"run_id": run.run_id, "chain_id": run.chain_id, "task_id": current},
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
                            retry_state={"task": current, "attempt": attempt, "seq": seq},
                            owner=owner,
                        )
                    await asyncio.sleep(delay)
                duration_ns = int((perf_counter() - started) * 1e9)
                if error is not None:
                    error.with_context(
                        chain_id=chain.id or None, task_id=current, run_id=run.run_id
                    )
                    unit = CapturedStateUnit(
                        current,
                        step.handler,
                        vtype,
                        DataType.NIL,
                        getattr(error, "transition", ""),
                        duration_ns,
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
                                status=failed_status(error),
                                owner=owner,
                            )
                        raise error
                    variables["last_error"] = str(error)
                    types["last_error"] = DataType.STRING
                    current = None if target == TERM_END else target
                    if store is not None:
                        failed_delta: dict[str, Any] = {"last_error": ["string", str(error)]}
                        await store.checkpoint(
                            run.run_id,
                            seq=seq,
                            step=unit.to_dict(),
                            step_status="failed",
                            vars_delta=failed_delta,
                            next_task=current,
                            status="running",
                            owner=owner,
                        )
                    continue
                # -- success: record, compose, print, branch, checkpoint
                unit = CapturedStateUnit(
                    current,
                    step.handler,
                    vtype,
                    otype,
                    teval,
                    duration_ns,
                    None,
                    to_display(value) if debug else "",
                    to_display(out) if debug else "",
                    step.input_var,
                    _meta(ctx, attempt),
                )
                history.append(unit)
                if record_step is not None:
                    record_step(unit)
                if step.compose is not None:  # Go: compose merges the task's output
                    out, otype = self._compose(step, out, otype, variables, types)
                variables[current] = out
                types[current] = otype
                variables["previous_output"] = out
                types["previous_output"] = otype
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
        except Exception as raw:
            # A subscriber or callback that raises must not leave the run "running" with its lease held.
            exc = as_engine_error(raw)
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
            if exc is raw:
                raise
            raise exc from raw
        except asyncio.CancelledError:
            if store is not None:
                await record_quietly(
                    store.finish_run(
                        run.run_id,
                        status="interrupted",
                        output=None,
                        output_type=None,
                        error={"message": "cancelled"},
                        totals=run.totals,
                        owner=owner,
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
        step: Step,
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

    def _delta_emitter(self, run: RunInfo, obs: Observers) -> Callable[[str, str], Awaitable[None]]:
        async def emit(task_id: str, delta: str) -> None:
            for fn in obs.on_llm_delta:
                await fn(run=run, task_id=task_id, delta=delta)

        return emit

    def _llm_call_emitter(
        self, run: RunInfo, obs: Observers
    ) -> Callable[[str, LLMCall], Awaitable[None]]:
        async def emit(task_id: str, call: LLMCall) -> None:
            totals = run.totals
            totals["llm_calls"] = totals.get("llm_calls", 0) + 1
            totals["input_tokens"] = totals.get("input_tokens", 0) + call.input_tokens
            totals["output_tokens"] = totals.get("output_tokens", 0) + call.output_tokens
            totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
            totals["llm_ms"] = round(totals.get("llm_ms", 0.0) + call.latency_ms, 3)
            if call.error is not None:  # cut short (timeout, cancel) or failed after sending
                totals["failed_calls"] = totals.get("failed_calls", 0) + 1
            for fn in obs.on_llm_call:
                await fn(run=run, task_id=task_id, call=call)
            if call.cost is not None:
                totals["cost"] = totals.get("cost", 0.0) + call.cost

        return emit


def _check_input_size(value: Any, limit: int) -> None:
    from taskengine.datatypes import to_jsonable
    from taskengine.sanitize import json_size

    size = len(value.encode("utf-8")) if isinstance(value, str) else json_size(to_jsonable(value))
    if size > limit:
        raise DataConversionError(f"input is {size:,} bytes, over the limit of {limit:,} bytes")


def _honour_retry_after(delay: float, error: TaskEngineError, step: Step) -> float:
    """At least the provider's `Retry-After` (capped by the task's timeout) before a retry."""
    asked = getattr(error, "retry_after", None)
    if not asked:
        return delay
    if step.timeout is not None:
        asked = min(asked, step.timeout)
    return max(delay, asked)


def _meta(ctx: ExecContext, attempt: int) -> dict[str, Any] | None:
    meta = ctx.step_meta
    if attempt > 1:
        meta = dict(meta or {})
        meta["attempts"] = attempt
    return meta
