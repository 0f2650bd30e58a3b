"""`TaskExecutor`: the base class of step-style tasks (see `taskengine.steps`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from taskengine.chain import (
    TaskChainDefinition,
    TaskDefinition,
)
from taskengine.datatypes import DataType, to_jsonable
from taskengine.engine import RunResult, SimpleEnv
from taskengine.engine.events import RunObserver
from taskengine.engine.leases import DEFAULT_LEASE_TTL
from taskengine.errors import (
    ChainValidationError,
    LintProblem,
    StepValidationError,
    TaskEngineError,
    TaskExecutionError,
    UnsupportedTaskTypeError,
)
from taskengine.executor import ExecContext, SimpleExec
from taskengine.ids import new_id
from taskengine.sanitize import DEFAULT_MAX_INPUT_BYTES, check_size, sanitize_text
from taskengine.step_defs import (
    STEP_HANDLER_PREFIX,
    StepResult,
    TaskStep,
    build_chain,
    compile_steps,
    is_envelope,
    latest_envelope,
    missing_info_error,
    render_prompt,
    snake_case,
)
from taskengine.step_runtime import StepResources
from taskengine.steps.current import CurrentStep, current_resources, current_step
from taskengine.steps.llm import ask_model
from taskengine.steps.run import handler_method, run_step

__all__ = ["StepResult", "TaskExecutor", "TaskStep"]

logger = logging.getLogger("taskengine.steps")


class TaskExecutor:
    """Base class of step-style tasks: `task_steps` run in order through the chain engine.

    Args:
        llm_model: model for `llm_call` and handler-less steps ("" = the configured default).
        provider: provider name or type for `llm_call` (None = the configured default).
        settings: a `taskengine.config.Settings`; loaded from file/environment when needed and None.
        store: False (no checkpoints), True (the configured run store), a store URL, or a `RunStore`.
        resolver: a `ModelResolver` to use instead of building one from settings.
        max_retries: retries of a failed step (and of a transient LLM error inside `llm_call`).
        retry_base / retry_max: exponential backoff between retries, in seconds (full jitter).
        step_timeout: seconds a step may take (None = no limit); a step's `timeout` overrides it.
        max_input_bytes: size limit of `input_data` and of each prompt (UTF-8 JSON bytes).
        observers: run event subscribers (activity tracking, metrics …).
        llm_retries: retries of a transient LLM error inside `llm_call` (default: `max_retries`).
        chain_id: id of the compiled chain (default: the class name in snake_case).
        lease_ttl: seconds a crashed process keeps its runs locked before `resume` may take them.
    """

    #: The steps, in order: dicts with id, name, required_info, instruction (see `TaskStep`).
    task_steps: list[dict[str, Any] | TaskStep]
    chain_id: str = ""

    def __init__(
        self,
        llm_model: str = "",
        *,
        provider: str | None = None,
        settings: Any = None,
        store: bool | str | Any = False,
        resolver: Any = None,
        max_retries: int = 3,
        retry_base: float = 0.5,
        retry_max: float = 8.0,
        step_timeout: float | None = None,
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
        observers: Iterable[RunObserver] = (),
        llm_retries: int | None = None,
        chain_id: str | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
    ) -> None:
        if max_retries < 0 or (llm_retries is not None and llm_retries < 0):
            raise StepValidationError(
                "max_retries and llm_retries must not be negative", field="max_retries"
            )
        self.llm_model = llm_model
        self.provider = provider
        self.max_retries = max_retries
        self.llm_retries = max_retries if llm_retries is None else llm_retries
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.step_timeout = step_timeout
        self.max_input_bytes = max_input_bytes
        self.observers = list(observers)
        self.lease_ttl = lease_ttl
        if chain_id:
            self.chain_id = chain_id
        # a subclass may list its steps as a class attribute; copy it so instances never share one list
        self.task_steps = list(getattr(type(self), "task_steps", []))
        self._settings = settings
        self._store_arg = store
        self._resolver = resolver
        self._inner = SimpleExec(resolver=resolver)
        self._resources: StepResources | None = None
        self._standalone: StepResources | None = None
        #: run id -> the compiled steps that run uses (task_steps may change between runs)
        self._plans: dict[str, tuple[TaskChainDefinition, dict[str, TaskStep]]] = {}
        #: run id -> the latest envelope seen (what a failed run's partial result is built from)
        self._progress: dict[str, dict[str, Any]] = {}
        #: (run id, step id) -> why the previous reply failed validation (told to the model on retry)
        self._last_invalid: dict[tuple[str, str], str] = {}

    # --- overridable hooks --------------------------------------------------------------------

    def preprocess(self, data: Any) -> Any:
        """Prepare a step's input before it goes to the model (identity by default)."""
        return data

    def postprocess(self, response: Any) -> Any:
        """Turn a model reply into the step's value (identity by default)."""
        return response

    # --- running ------------------------------------------------------------------------------

    async def execute(
        self, input_data: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> StepResult:
        """Run every step on `input_data` and return the final data (see `StepResult`).

        A failing run raises its `TaskEngineError` (step id, run id and cause filled in) with
        `error.partial` holding a `StepResult` of the steps that completed.
        """
        chain, steps = self.compile()
        data = self._check_input(input_data, chain)
        first = steps[chain.tasks[0].id]
        missing = [key for key in first.required_info if key not in data]
        if missing:
            raise missing_info_error(first, missing, chain_id=chain.id)
        run_id = run_id or new_id()
        self._plans[run_id] = (chain, steps)
        self._progress[run_id] = {"data": data, "steps": {}}
        try:
            async with self._opened() as res:
                env = self._env(res)
                try:
                    outcome = await env.exec_env(chain, data, DataType.JSON, run_id=run_id)
                except TaskEngineError as exc:
                    self._add_partial(exc, run_id, chain)
                    raise
            return self._result(outcome, outcome.output)
        finally:
            self._forget(run_id)

    def execute_sync(self, input_data: Mapping[str, Any] | None = None) -> StepResult:
        """`execute()` for code without an event loop."""
        return asyncio.run(self.execute(input_data))

    async def resume(self, run_id: str) -> StepResult:
        """Continue a crashed, failed or interrupted run from its last checkpoint (needs a store)."""
        chain, steps = self.compile()
        self._plans[run_id] = (chain, steps)
        try:
            async with self._opened() as res:
                store = res.store
                if store is None:
                    raise TaskExecutionError(
                        "resume needs a run store: TaskExecutor(store=True or a URL)",
                        run_id=run_id,
                        chain_id=chain.id,
                    )
                record = await store.get_run(run_id)
                ran = [t.get("id") for t in (record.chain or {}).get("tasks", [])]
                if ran != [t.id for t in chain.tasks]:
                    raise TaskExecutionError(
                        f"run {run_id} ran the steps {ran}, but this executor defines "
                        f"{[t.id for t in chain.tasks]}; resume it with the executor that started it",
                        run_id=run_id,
                        chain_id=record.chain_id,
                    )
                state = await store.load_state(run_id)
                self._progress[run_id] = latest_envelope(chain, state.variables)
                env = self._env(res)
                try:
                    outcome = await env.resume(run_id)
                except TaskEngineError as exc:
                    self._add_partial(exc, run_id, chain)
                    raise
                output = outcome.output
                if not is_envelope(output):  # the run had ended but was not marked finished
                    output = latest_envelope(chain, (await store.load_state(run_id)).variables)
            return self._result(outcome, output)
        finally:
            self._forget(run_id)

    async def __aenter__(self) -> TaskExecutor:
        """Keep the store and provider connections open across `execute()` calls until exit."""
        if self._resources is None:
            self._resources = await StepResources(self).open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what `async with` (or `llm_call` outside a run) opened; a no-op otherwise."""
        for res in (self._resources, self._standalone):
            if res is not None:
                await res.aclose()
        self._resources = self._standalone = None

    # --- the LLM ------------------------------------------------------------------------------

    async def llm_call(
        self,
        instruction: str = "",
        context: Any = None,
        *,
        system: str = "",
        model: str | None = None,
        provider: str | None = None,
        temperature: float | None = None,
    ) -> str:
        """Ask the model: `instruction` followed by `context` (rendered as JSON); returns the reply text.

        Control characters are stripped from the prompt and its size is limited to
        `max_input_bytes`. Transient provider failures (connection errors, timeouts, 5xx, 429)
        are retried with exponential backoff up to `llm_retries` times; other errors raise
        `LLMError` at once. Each answered call is recorded (latency, tokens, cost) on the run.
        """
        current = current_step.get()
        ctx = current.ctx if current is not None else None
        task_id = current.step.id if current is not None else None
        run_id = ctx.run.run_id if ctx is not None else None
        prompt = sanitize_text(render_prompt(instruction, context))
        system = sanitize_text(system)
        if not prompt.strip():
            raise StepValidationError(
                "llm_call needs an instruction or a context",
                task_id=task_id,
                run_id=run_id,
                field="instruction",
            )
        check_size(
            prompt + system, self.max_input_bytes, what="prompt", task_id=task_id, run_id=run_id
        )
        return await ask_model(
            self,
            ctx,
            task_id,
            prompt,
            system=system,
            model=model,
            provider=provider,
            temperature=temperature,
        )

    # --- TaskExecutorProtocol -------------------------------------------------------------------

    @property
    def handler_names(self) -> list[str]:
        """Every handler this executor runs: the built-in ones plus `step:<id>` per step."""
        _chain, steps = self.compile()
        return [*self._inner.handler_names, *(STEP_HANDLER_PREFIX + sid for sid in steps)]

    async def task_exec(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ) -> tuple[Any, DataType, str]:
        """Run one task: `step:<id>` tasks by their step, anything else by the built-in handlers."""
        if not task.handler.startswith(STEP_HANDLER_PREFIX):
            return await self._inner.task_exec(ctx, task, input, input_type)
        run_id = ctx.run.run_id
        chain, steps = self._plans.get(run_id) or self.compile()
        step_id = task.handler[len(STEP_HANDLER_PREFIX) :]
        step = steps.get(step_id)
        if step is None:
            raise UnsupportedTaskTypeError(
                f"{type(self).__name__} has no step {step_id!r}", task_id=task.id
            )
        if step_id == chain.tasks[0].id:
            envelope = {"data": dict(input) if isinstance(input, Mapping) else {}, "steps": {}}
        elif is_envelope(input):
            envelope = input
        else:
            raise TaskExecutionError(
                f"step {step_id!r} expects the previous step's output as input",
                task_id=task.id,
                field="input_var",
            )
        self._progress[run_id] = envelope
        data = envelope["data"]
        missing = [key for key in step.required_info if key not in data]
        if missing:
            raise missing_info_error(step, missing, run_id=run_id)
        token = current_step.set(CurrentStep(ctx, step))
        try:
            result = await run_step(self, step, {**data, "instruction": step.instruction}, run_id)
        finally:
            current_step.reset(token)
        result = to_jsonable(result)
        out = {"data": {**data, **result}, "steps": {**envelope["steps"], step.id: result}}
        self._progress[run_id] = out
        self._last_invalid.pop((run_id, step.id), None)
        return out, DataType.JSON, "ok"

    # --- internals ----------------------------------------------------------------------------

    def compile(self) -> tuple[TaskChainDefinition, dict[str, TaskStep]]:
        """`task_steps` as a validated linear chain plus the steps by id."""
        raw = list(self.task_steps)
        chain_id = self.chain_id or snake_case(type(self).__name__)
        steps = compile_steps(raw, chain_id=chain_id)
        unanswerable = [
            LintProblem(
                f"step {sid!r} has no instruction and no handle_{sid} method",
                chain_id=chain_id,
                task_id=sid,
                path=f"task_steps[{index}].instruction",
            )
            for index, (sid, step) in enumerate(steps.items())
            if not step.instruction and handler_method(self, sid) is None
        ]
        if unanswerable:
            raise ChainValidationError(unanswerable, chain_id=chain_id)
        chain = build_chain(
            steps,
            chain_id=chain_id,
            retries=self.max_retries,
            timeout=self.step_timeout,
            retry_base=self.retry_base,
            retry_max=self.retry_max,
        )
        return chain, steps

    def _check_input(
        self, input_data: Mapping[str, Any] | None, chain: TaskChainDefinition
    ) -> dict[str, Any]:
        if input_data is None:
            input_data = {}
        if not isinstance(input_data, Mapping):
            raise StepValidationError(
                f"input_data must be a dict, got {type(input_data).__name__}",
                chain_id=chain.id,
                field="input_data",
            )
        check_size(dict(input_data), self.max_input_bytes, what="input_data", chain_id=chain.id)
        return to_jsonable(dict(input_data))

    def _env(self, res: StepResources) -> SimpleEnv:
        observers = list(self.observers)
        settings = res.settings
        if settings is not None and getattr(settings, "prices", None):
            from taskengine.metrics import CostObserver

            observers.insert(0, CostObserver(settings.price_table()))
        return SimpleEnv(
            self,
            store=res.store,
            observers=observers,
            retry_base=self.retry_base,
            retry_max=self.retry_max,
            lease_ttl=self.lease_ttl,
        )

    @contextlib.asynccontextmanager
    async def _opened(self) -> AsyncIterator[StepResources]:
        """The resources of `async with`, else fresh ones closed when the run ends."""
        owned = self._resources is None
        res = await StepResources(self).open() if owned else self._resources
        assert res is not None
        token = current_resources.set(res)  # how llm_call inside this run finds them
        try:
            yield res
        finally:
            current_resources.reset(token)
            if owned:
                await res.aclose()

    def _result(self, outcome: RunResult, output: Any) -> StepResult:
        envelope = output if is_envelope(output) else {"data": {}, "steps": {}}
        return StepResult(
            envelope["data"],
            run_id=outcome.run_id,
            chain_id=outcome.chain_id,
            status=outcome.status,
            steps=envelope["steps"],
            totals=outcome.totals,
            state=outcome.state,
        )

    def _add_partial(self, exc: TaskEngineError, run_id: str, chain: TaskChainDefinition) -> None:
        """Attach the completed steps to a failed run's error as `exc.partial`."""
        envelope = self._progress.get(run_id) or {"data": {}, "steps": {}}
        exc.with_context(run_id=run_id, chain_id=chain.id)
        partial = StepResult(
            envelope["data"],
            run_id=run_id,
            chain_id=chain.id,
            status="failed",
            steps=envelope["steps"],
        )
        exc.partial = partial  # type: ignore[attr-defined]

    def _forget(self, run_id: str) -> None:
        self._plans.pop(run_id, None)
        self._progress.pop(run_id, None)
        for key in [k for k in self._last_invalid if k[0] == run_id]:
            del self._last_invalid[key]
