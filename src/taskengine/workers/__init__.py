"""Scale-out: runs executed by worker processes through procrastinate (PostgreSQL-backed).

A queued run is an ordinary durable run (status `queued`) plus one procrastinate job naming
it, both written in one transaction. A worker executes the job by resuming the run through
`SimpleEnv.resume`, so leases, checkpoints, breakpoints and HITL edits work as for any run.

Modules: `settings` (the `queue:` section), `app` (the procrastinate App over `TASKENGINE_DB`),
`jobs` (what a worker does with a job, retries, stalled workers), `submit` (enqueueing),
`worker` (the worker process). procrastinate is the `queue` extra, imported lazily.
"""

from __future__ import annotations

from taskengine.workers.settings import QueueSettings

__all__ = ["QueueSettings"]
