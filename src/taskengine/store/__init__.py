"""Durable runs: checkpoints, resume state, leases, and the server's registries.

`await open_store(url)` gives a ready store: SQLite (`sqlite:///abs/path.db`, the default
under the user's data directory) or PostgreSQL (`postgresql://…`). `TASKENGINE_DB` picks it.

Layout: `records` (what is stored), `base` (the `RunStore` protocol), `codec` and `rules`
(what every backend shares), `opening`, `paths` and `migrations`, one package per backend
(`sqlite`, `postgres`), and `secret_store` (secrets sealed into the store's database).
"""

from taskengine.store.base import RunStore
from taskengine.store.migrations import SCHEMA_VERSION
from taskengine.store.opening import open_store, store_from_url
from taskengine.store.paths import default_db_url
from taskengine.store.records import (
    RUN_STATUSES,
    SET_TASK_ID,
    TERMINAL_STATUSES,
    ChainRecord,
    Page,
    RemoteHookRecord,
    RunRecord,
    RunState,
    StepRecord,
)

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
