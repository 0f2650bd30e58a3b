"""`Engine` (Go: `SimpleEnv`): runs chains and resumes durable runs; one instance serves many
concurrent runs.

`run` (Go: `exec_env`) checks the chain, the breakpoints and the input before anything runs, opens the
run's record (with a store), and hands the run to a `RunLoop`; `resume` continues a stored run
(see `taskengine.engine.resume`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import time
from typing import Any, Protocol

from taskengine.bounds import check_depth
from taskengine.chain import TaskChainDefinition, load_chain
from taskengine.datatypes import DataType, Tool, convert_to_type
from taskengine.engine.callback import CallbackObserver, EventCallback
from taskengine.engine.events import RunInfo, RunObserver
from taskengine.engine.journal import RunJournal
from taskengine.engine.leases import DEFAULT_LEASE_TTL, new_owner
from taskengine.engine.loop import RunLoop
from taskengine.engine.observers import Observers
from taskengine.engine.plan import Plan
from taskengine.engine.results import RunResult
from taskengine.engine.resume import resume_run
from taskengine.errors import DataConversionError, DefinitionError, TaskEngineError
from taskengine.executor import SimpleExec, TaskExecutorProtocol
from taskengine.ids import new_id

__all__ = ["Engine", "EnvExecutor", "SimpleEnv"]


class EnvExecutor(Protocol):
    """Runs whole chains (Go: `EnvExecutor`); `SimpleEnv` is the implementation."""

    async def exec_env(
        self, chain: Any, input: Any, data_type: DataType | str = ..., **options: Any
    ) -> RunResult: ...


class Engine:
    """Runs chains. One instance serves many concurrent runs.

    `SimpleEnv` (the Go engine's name) is this class, and `exec_env` is `run`.

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

    async def run(
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
        _check_breakpoints(chain, breakpoints)
        value = self._checked_input(chain, input, data_type)
        run = RunInfo(
            run_id=run_id or new_id(),
            chain_id=chain.id,
            request_id=request_id or "",
            started_at=time(),
        )
        journal = RunJournal(
            self.store,
            run,
            self._lease_token() if self.store is not None else "",
            variables={"input": value, "previous_output": value},
            types={"input": data_type, "previous_output": data_type},
            history=[],
            debug=chain.debug,
            lease_ttl=self.lease_ttl,
        )
        if self.store is not None:
            await journal.create(chain, value, data_type, list(breakpoints))
        loop = RunLoop(
            self,
            chain,
            journal,
            self._observers(on_event),
            breakpoints=set(breakpoints),
            client_tools=client_tools,
        )
        await loop.start(value, data_type)
        return await loop.drive(self._plan(chain), chain.tasks[0].id, 0)

    #: the Go name (`EnvExecutor.exec_env`), what the rest of the package calls
    exec_env = run

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
        return await resume_run(
            self, run_id, set_vars=set_vars, on_event=on_event, breakpoints=breakpoints
        )

    def is_checked(self, chain: TaskChainDefinition) -> bool:
        """Whether `chain` was already linted for this executor (so a run starts without lint)."""
        return (id(chain), self._custom_handlers()) in chain._linted

    # --- what a run is built from --------------------------------------------------------

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

    def _checked_input(self, chain: TaskChainDefinition, input: Any, data_type: DataType) -> Any:
        """The run's input converted to `data_type`, within the depth and size limits."""
        try:
            value = check_depth(convert_to_type(input, data_type), field="input")
            if self.max_input_bytes:
                _check_input_size(value, self.max_input_bytes)
        except TaskEngineError as exc:
            raise exc.with_context(chain_id=chain.id or None, field="input") from None
        return value

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
        """The run's subscribers by event (cached while `self.observers` is unchanged)."""
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

    def _lease_token(self) -> str:
        """A lease owner for one run or resume call: host and pid (to spot dead owners), then unique."""
        return f"{self.owner}:{new_id()[:8]}"


def _check_breakpoints(chain: TaskChainDefinition, breakpoints: Iterable[str]) -> None:
    unknown = sorted(set(breakpoints) - {t.id for t in chain.tasks})
    if unknown:
        raise DefinitionError(
            f"breakpoint on unknown task {unknown[0]!r}; tasks: {', '.join(t.id for t in chain.tasks)}",
            chain_id=chain.id or None,
            field="breakpoints",
        )


def _check_input_size(value: Any, limit: int) -> None:
    from taskengine.datatypes import to_jsonable
    from taskengine.sanitize import json_size

    size = len(value.encode("utf-8")) if isinstance(value, str) else json_size(to_jsonable(value))
    if size > limit:
        raise DataConversionError(f"input is {size:,} bytes, over the limit of {limit:,} bytes")


SimpleEnv = Engine
"""The Go engine's name for `Engine`."""
