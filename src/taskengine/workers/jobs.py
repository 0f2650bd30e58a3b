"""What a worker does with a job: execute a queued run, retry it, rescue a dead worker's runs.

A job carries only a run id. Executing it is `SimpleEnv.resume(run_id)`: the run continues from
its last checkpoint under a lease, so a job run twice (a worker that died mid-run, a retry)
never records a step twice. A run that fails is retried with exponential backoff until
`queue.max_attempts`, then stays `failed` with its error; errors no retry can fix (a broken
chain, a bad input) are not retried at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from taskengine.engine.journal import failed_run_status, record_quietly
from taskengine.errors import RunLeaseError, TaskEngineError
from taskengine.store.base import QUEUED
from taskengine.workers.app import RUN_TASK, STALLED_TASK

if TYPE_CHECKING:
    from taskengine.runtime import Runtime
    from taskengine.workers.settings import QueueSettings

__all__ = ["execute_run", "make_retry", "register", "retry_delay"]

logger = logging.getLogger("taskengine.queue")  # the name users configure; kept

#: runs a job leaves alone: done, or waiting for a person (`taskengine resume`)
_SETTLED = frozenset({"succeeded", "paused"})


async def execute_run(runtime: Runtime, run_id: str) -> str:
    """Run (or continue) the queued run `run_id` to its end; returns its final status."""
    store = runtime.store
    record = await store.get_run(run_id)
    if record.status in _SETTLED:
        return record.status
    if record.status == QUEUED:
        await _mark_running(runtime, record)
    result = await runtime.env.resume(run_id)
    return result.status


async def _mark_running(runtime: Runtime, record: Any) -> None:
    """`queued` → `running` at once (not only after the first step), under the run's lease.

    Written only while this job holds the lease and the run still reads `queued`: a worker
    frozen after it read the record must not, when it wakes, set a run that another worker
    finished back to `running` at its first task (it would then run the chain again).
    """
    from taskengine.engine.leases import new_owner, take_lease

    store, run_id = runtime.store, record.run_id
    owner = new_owner()
    # a worker killed between here and the release leaves its lease: taken over like resume's
    await take_lease(store, record, owner, runtime.env.lease_ttl)
    try:
        record = await store.get_run(run_id)
        if record.status == QUEUED:  # the step rows stay the resumer's alone
            await store.checkpoint(
                run_id,
                seq=0,
                step=None,
                step_status=None,
                next_task=record.next_task,
                status="running",
                owner=owner,
            )
    finally:
        await record_quietly(store.release_lease(run_id, owner))


def retry_delay(
    exception: BaseException, attempts: int, settings: QueueSettings, lease_ttl: float
) -> float | None:
    """Seconds before the job runs again, or None when this failure is final.

    `attempts` counts the earlier attempts (0 on the first). A worker stopping hands its runs
    on at once, whatever the count. A run another process holds is looked at again once its
    lease could have lapsed, whatever the count too: that process may be frozen or gone, and
    giving up would leave the run with no job to finish it. A broken chain or a bad input is
    final at once; anything else backs off exponentially until `settings.max_attempts`.
    """
    from procrastinate.exceptions import JobAborted

    if isinstance(exception, (asyncio.CancelledError, JobAborted)):
        return 0.0
    if isinstance(exception, RunLeaseError):
        return lease_ttl / 2
    if attempts + 1 >= settings.max_attempts:
        return None
    if isinstance(exception, TaskEngineError) and not exception.retryable:
        return None
    return min(settings.retry_max, settings.retry_base * (2**attempts))


def make_retry(settings: QueueSettings, lease_ttl: float) -> Any:
    """The run task's retry strategy (a procrastinate `BaseRetryStrategy`) over `retry_delay`."""
    from procrastinate.retry import BaseRetryStrategy, RetryDecision

    class RunRetry(BaseRetryStrategy):
        def get_retry_decision(self, *, exception: BaseException, job: Any) -> Any:
            delay = retry_delay(exception, job.attempts, settings, lease_ttl)
            return (
                None
                if delay is None
                else RetryDecision(retry_in={"milliseconds": round(delay * 1000)})
            )

    return RunRetry()


def register(app: Any, settings: QueueSettings, *, lease_ttl: float = 30.0) -> Any:
    """Register the run task and the stalled-worker rescue on `app`; returns the run task."""

    @app.task(
        name=RUN_TASK,
        pass_context=True,
        queue=settings.name,
        retry=make_retry(settings, lease_ttl),
    )
    async def run_queued(context: Any, run_id: str) -> str:
        runtime = context.additional_context["runtime"]

        def status_after(exc: TaskEngineError) -> str:
            # a failure this job will retry reads `queued` (its error kept) until the retry
            retried = retry_delay(exc, context.job.attempts, settings, lease_ttl) is not None
            return QUEUED if retried else "failed"

        token = failed_run_status.set(status_after)
        try:
            return await execute_run(runtime, run_id)
        finally:
            failed_run_status.reset(token)

    @app.periodic(cron=f"* * * * * */{settings.stall_check}", periodic_id="stalled")
    @app.task(name=STALLED_TASK, pass_context=True, queue=settings.name)
    async def retry_stalled(context: Any, timestamp: int) -> int:
        """Put the jobs of workers whose heartbeat stopped back in the queue."""
        manager = context.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=settings.stalled_after)
        for job in stalled:
            logger.warning(
                "job %s (%s) was held by a worker that stopped answering; queued again",
                job.id,
                job.task_kwargs.get("run_id", job.task_name),
            )
            await manager.retry_job(job)
        return len(stalled)

    return run_queued
