"""Fixtures shared by the store tests."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from taskengine.store.migrations import SQLITE_MIGRATIONS, VERSION_TABLE

#: the chain the runs in a schema-2 file were started with
SCHEMA_2_CHAIN = {"id": "old", "tasks": [{"id": "a", "handler": "noop"}]}


def _write_schema_2_file(
    path: Path,
    run_id: str,
    *,
    status: str,
    next_task: str | None,
    steps: Sequence[tuple[str, str]],
) -> None:
    """A SQLite file as taskengine wrote it under store schema 2: one run of chain `old` and
    its step rows (`steps`: the step JSON and vars_delta JSON of seq 1, 2, …)."""
    conn = sqlite3.connect(path)
    for migration in SQLITE_MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    now = time.time_ns() // 1000
    conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES ('store', 2, ?)", (now,))
    conn.execute(
        "INSERT INTO te_runs (run_id, chain_id, status, created_at, updated_at, input_type, "
        "next_task, step_count) VALUES (?, 'old', ?, ?, ?, 'string', ?, ?)",
        (run_id, status, now, now, next_task, len(steps)),
    )
    conn.execute(
        "INSERT INTO te_run_data (run_id, chain, input) VALUES (?, ?, '\"hi\"')",
        (run_id, json.dumps(SCHEMA_2_CHAIN)),
    )
    conn.executemany(
        "INSERT INTO te_steps (run_id, seq, task_id, status, step, vars_delta, created_at) "
        "VALUES (?, ?, 'a', 'succeeded', ?, ?, ?)",
        [(run_id, seq, step, delta, now) for seq, (step, delta) in enumerate(steps, 1)],
    )
    conn.commit()
    conn.close()


@pytest.fixture
def schema_2_file() -> Callable[..., None]:
    """Writes a SQLite file as schema-2 taskengine left it (see `_write_schema_2_file`)."""
    return _write_schema_2_file
