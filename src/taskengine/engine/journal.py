"""The run journal: everything one run leaves behind, written in one place.

A `RunJournal` keeps the run's step history (the `CapturedStateUnit` of every step, built here
and only here), feeds the inspector's trace, and writes the run record and its checkpoints to
the run store: the run's creation, a retry about to happen, each step's end, a pause, and the
run's end. Without a store only the history and trace are kept; `durable` tells the loop
whether a checkpoint is worth awaiting at all (one coroutine per step shows on the hot path).

A traced attempt's root span goes into the run record's `meta` (`ATTEMPT_SPANS`, the last
`MAX_ATTEMPT_SPANS`), so a later attempt links to it in whatever process it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType, to_display, to_jsonable
from taskengine.engine.leases import Heartbeat
from taskengine.engine.record import CapturedStateUnit
from taskengine.errors import RunLeaseError, TaskEngineError

if TYPE_CHECKING:
    from datetime import datetime

    from taskengine.chain import TaskChainDefinition
    from taskengine.engine.events import RunInfo
    from taskengine.engine.plan import Step
    from taskengine.executor import ExecContext

__all__ = [
    "ATTEMPT_SPANS",
    "MAX_ATTEMPT_SPANS",
    "RunJournal",
    "earlier_spans",
    "failed_run_status",
    "failed_status",
    "record_quietly",
]

logger = logging.getLogger("taskengine.engine")

#: the key of the run record's `meta` holding the root spans of the run's traced attempts
ATTEMPT_SPANS = "attemptSpans"
#: how many of those spans a run record keeps (the newest ones)
MAX_ATTEMPT_SPANS = 16

# Calling a class with keywords packs them into a dict on every call (CPython 3.11: ~0.3 µs, a
# tenth of a step); calling its `__init__` on a new instance takes them as a plain call does.
_new_unit = object.__new__
_init_unit = CapturedStateUnit.__init__

#: what a failing run's record reads in the current task: `failed`, or `queued` when a queue
#: worker will try it again. Set by the worker around one job, so no reader ever sees a
#: `failed` that a retry is about to undo.
failed_run_status: ContextVar[Callable[[TaskEngineError], str] | None] = ContextVar(
    "failed_run_status", default=None
)


def failed_status(error: TaskEngineError) -> str:
    """The status a run that ends with `error` is recorded with (see `failed_run_status`)."""
    status_of = failed_run_status.get()
    return "failed" if status_of is None else status_of(error)


async def record_quietly(awaitable: Awaitable[Any], what: str = "the end of a run") -> None:
    """Await a bookkeeping write whose failure must not hide the run's own outcome."""
    try:
        await awaitable
    except Exception:  # the run's own error matters more than a failed bookkeeping write
        logger.exception("could not record %s", what)


def earlier_spans(meta: dict[str, Any] | None) -> tuple[dict[str, Any], ...]:
    """The root spans of a run's earlier attempts, as its record's `meta` keeps them."""
    spans = (meta or {}).get(ATTEMPT_SPANS)
    if not isinstance(spans, list):
        return ()
    return tuple(span for span in spans if isinstance(span, dict))


class RunJournal:
    """The history, trace and run-store record of one run (`store` may be None)."""

    __slots__ = (
        "debug",
        "durable",
        "history",
        "lease_ttl",
        "owner",
        "record_step",
        "run",
        "store",
        "types",
        "variables",
    )

    def __init__(
        self,
        store: Any,
        run: RunInfo,
        owner: str,
        *,
        variables: dict[str, Any],
        types: dict[str, DataType],
        history: list[CapturedStateUnit],
        debug: bool,
        lease_ttl: float,
    ) -> None:
        self.store = store
        self.durable = store is not None
        self.run = run
        self.owner = owner
        self.variables = variables
        self.types = types
        self.history = history
        #: steps' inputs and outputs are kept as text only for chains with `debug`
        self.debug = debug
        self.lease_ttl = lease_ttl
        #: the inspector's `StackTrace.record_step`, when the run has a trace
        self.record_step: Callable[[CapturedStateUnit], None] | None = None

    # --- the history -------------------------------------------------------------------------

    def record(
        self,
        step: Step,
        value: Any,
        value_type: DataType,
        started: float,
        ctx: ExecContext,
        output: Any,
        output_type: DataType,
        transition: str,
        error: str | None = None,
    ) -> CapturedStateUnit:
        """Add the step that started at `started` (a `perf_counter`) to the history and trace.

        `ctx` tells what the step noted and how many attempts it took; a failed step has its
        `error` message (and no output). Called once per step, so its arguments are positional.
        """
        duration_ns = int((perf_counter() - started) * 1e9)
        meta = ctx.step_meta
        attempts = ctx.attempt
        if attempts > 1:
            meta = dict(meta or {})
            meta["attempts"] = attempts
        debug = self.debug
        unit = _new_unit(CapturedStateUnit)
        _init_unit(
            unit,
            task_id=step.id,
            task_handler=step.handler,
            input_type=value_type,
            output_type=output_type,
            transition=transition,
            duration_ns=duration_ns,
            error=error,
            input=to_display(value) if debug else "",
            output=to_display(output) if debug and error is None else "",
            input_var=step.input_var,
            meta=meta,
        )
        self.history.append(unit)
        if self.record_step is not None:
            self.record_step(unit)
        return unit

    # --- the run record ----------------------------------------------------------------------

    async def create(
        self,
        chain: TaskChainDefinition,
        value: Any,
        data_type: DataType,
        breakpoints: list[str],
    ) -> None:
        """Write the new run's record, holding its lease."""
        from taskengine.store.base import RunRecord

        now = _utcnow()
        run = self.run
        await self.store.create_run(
            RunRecord(
                run_id=run.run_id,
                chain_id=chain.id,
                status="running",
                created_at=now,
                updated_at=now,
                chain=chain.stored_form(),
                input=to_jsonable(value),
                input_type=data_type.type_name,
                request_id=run.request_id or None,
                meta={"breakpoints": breakpoints} if breakpoints else {},
                lease_owner=self.owner,
                next_task=chain.tasks[0].id,
            ),
            lease_ttl_s=self.lease_ttl,
        )

    async def attempt_traced(self) -> None:
        """Add this attempt's root span (`run.root_span`) to the run record (not without a
        store). A failed write is logged: the run goes on, its later attempts lack the link."""
        span = self.run.root_span
        if self.store is None or span is None:
            return
        await record_quietly(
            self.store.append_meta(
                self.run.run_id,
                ATTEMPT_SPANS,
                span,
                keep=MAX_ATTEMPT_SPANS,
                owner=self.owner or None,
            ),
            "the root span of a run attempt",
        )

    def start_heartbeat(self) -> Heartbeat | None:
        """Keep the lease alive while the run goes on (None without a store)."""
        if self.store is None:
            return None
        return Heartbeat(self.store, self.run.run_id, self.owner, self.lease_ttl)

    # --- checkpoints (call only when `durable`) -----------------------------------------------

    async def retrying(self, seq: int, task_id: str, attempt: int) -> None:
        """Attempt `attempt` of step `seq` failed and will be retried: resume retries it too."""
        await self.store.checkpoint(
            self.run.run_id,
            seq=seq - 1,
            step=None,
            step_status=None,
            vars_delta={},
            next_task=task_id,
            status="running",
            retry_state={"task": task_id, "attempt": attempt, "seq": seq},
            owner=self.owner,
        )

    async def step_succeeded(
        self, seq: int, step: Step, unit: CapturedStateUnit, next_task: str | None
    ) -> None:
        """The step's output (and composed value) are stored; the run goes on at `next_task`."""
        name = step.id
        variables, types = self.variables, self.types
        delta: dict[str, Any] = {name: [types[name].type_name, to_jsonable(variables[name])]}
        if step.compose is not None:
            name = f"{name}_composed"
            delta[name] = [types[name].type_name, to_jsonable(variables[name])]
        await self.store.checkpoint(
            self.run.run_id,
            seq=seq,
            step=unit.to_dict(),
            step_status="succeeded",
            vars_delta=delta,
            next_task=next_task,
            status="running",
            totals=self.run.totals or None,
            owner=self.owner,
        )

    async def step_failed(self, seq: int, unit: CapturedStateUnit, error: TaskEngineError) -> None:
        """The step failed with nowhere to go: the run fails (or is queued again) at this step."""
        await self.store.checkpoint(
            self.run.run_id,
            seq=seq,
            step=unit.to_dict(),
            step_status="failed",
            vars_delta={},
            next_task=unit.task_id,
            status=failed_status(error),
            owner=self.owner,
        )

    async def step_failed_over(
        self, seq: int, unit: CapturedStateUnit, error: TaskEngineError, next_task: str | None
    ) -> None:
        """The step failed and the run goes on at its `on_failure` task, with `last_error` set."""
        await self.store.checkpoint(
            self.run.run_id,
            seq=seq,
            step=unit.to_dict(),
            step_status="failed",
            vars_delta={"last_error": ["string", str(error)]},
            next_task=next_task,
            status="running",
            owner=self.owner,
        )

    async def paused(self, seq: int, task_id: str) -> None:
        """The run stops before `task_id` (a breakpoint) and lets go of its lease."""
        if self.store is None:
            return
        await self.store.checkpoint(
            self.run.run_id,
            seq=seq,
            step=None,
            step_status=None,
            vars_delta={},
            next_task=task_id,
            status="paused",
            owner=self.owner,
        )
        await self.store.release_lease(self.run.run_id, self.owner)

    # --- the run's end -----------------------------------------------------------------------

    async def finished(self, output: Any, output_type: DataType) -> None:
        """The run succeeded with `output`."""
        if self.store is None:
            return
        await self.store.finish_run(
            self.run.run_id,
            status="succeeded",
            output=to_jsonable(output),
            output_type=output_type.type_name,
            error=None,
            totals=self.run.totals,
            owner=self.owner,
        )

    async def failed(self, error: TaskEngineError) -> None:
        """The run failed with `error` (a failed write is logged, not raised)."""
        # A run whose lease went to another process is theirs now: leave its record alone.
        if self.store is None or isinstance(error, RunLeaseError):
            return
        await record_quietly(
            self.store.finish_run(
                self.run.run_id,
                status=failed_status(error),
                output=None,
                output_type=None,
                error=error.to_dict(),
                totals=self.run.totals,
                owner=self.owner,
            )
        )

    async def interrupted(self) -> None:
        """The run was cancelled (a failed write is logged, not raised)."""
        if self.store is None:
            return
        await record_quietly(
            self.store.finish_run(
                self.run.run_id,
                status="interrupted",
                output=None,
                output_type=None,
                error={"message": "cancelled"},
                totals=self.run.totals,
                owner=self.owner,
            )
        )


def _utcnow() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)
