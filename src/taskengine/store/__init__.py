"""Durable runs: checkpoints, resume state, leases, and the server's registries.

`await open_store(url)` gives a ready store: SQLite (`sqlite:///abs/path.db`, the default
under the user's data directory) or PostgreSQL (`postgresql://…`). `TASKENGINE_DB` picks it.
"""

from taskengine.store.base import (
    RUN_STATUSES,
    SET_TASK_ID,
    TERMINAL_STATUSES,
    ChainRecord,
    Page,
    RemoteHookRecord,
    RunRecord,
    RunState,
    RunStore,
    StepRecord,
    default_db_url,
    open_store,
    store_from_url,
)
from taskengine.store.migrations import SCHEMA_VERSION

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "SET_TASK_ID",
    "TERMINAL_STATUSES",
    "ChainRecord",
    "Page",
    "RemoteHookRecord",
    "RunRecord",
    "RunState",
    "RunStore",
    "StepRecord",
    "default_db_url",
    "open_store",
    "store_from_url",
]
