"""Numbered schema migrations, one list per backend, applied in order when a store opens.

Migration N is `*_MIGRATIONS[N - 1]`, a tuple of statements run in one transaction with the
version bump. Append new migrations; never edit one that has shipped. Both lists must stay
the same length so both backends always have the same schema version.

Tables carry a `te_` prefix so the store can share a PostgreSQL schema with other software.
SQLite keeps times as integer microseconds since the epoch (exact and cheap to compare);
PostgreSQL uses TIMESTAMPTZ and JSON (not JSONB: JSON keeps the stored text, key order
included, so both backends give back exactly what was written).
"""

from __future__ import annotations

__all__ = ["POSTGRES_MIGRATIONS", "SCHEMA_VERSION", "SQLITE_MIGRATIONS", "VERSION_TABLE"]

#: holds one row per component: (component, version, applied_at).
VERSION_TABLE = "te_schema_version"
COMPONENT = "store"

SQLITE_MIGRATIONS: list[tuple[str, ...]] = [
    (
        # 1: runs with their checkpointed steps, the registries, secret blobs
        """CREATE TABLE te_schema_version (
            component TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            applied_at INTEGER NOT NULL)""",
        """CREATE TABLE te_runs (
            run_id TEXT PRIMARY KEY,
            chain_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            chain TEXT NOT NULL,
            input TEXT,
            input_type TEXT NOT NULL,
            output TEXT,
            output_type TEXT,
            error TEXT,
            next_task TEXT,
            step_count INTEGER NOT NULL DEFAULT 0,
            request_id TEXT,
            totals TEXT NOT NULL DEFAULT '{}',
            retry_state TEXT NOT NULL DEFAULT '{}',
            lease_owner TEXT,
            lease_expires_at INTEGER,
            lease_ttl_us INTEGER,
            meta TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX te_runs_by_created ON te_runs (created_at, run_id)",
        "CREATE INDEX te_runs_by_chain ON te_runs (chain_id, created_at, run_id)",
        """CREATE TABLE te_steps (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            task_id TEXT NOT NULL,
            status TEXT NOT NULL,
            step TEXT,
            vars_delta TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (run_id, seq)) WITHOUT ROWID""",
        """CREATE TABLE te_chains (
            chain_id TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL)""",
        """CREATE TABLE te_secrets (
            name TEXT PRIMARY KEY,
            ciphertext BLOB NOT NULL,
            key_id TEXT NOT NULL,
            updated_at INTEGER NOT NULL)""",
        """CREATE TABLE te_remote_hooks (
            hook_id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            record TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL)""",
    ),
    (
        # 2: what never changes after a run starts (chain, input, meta) leaves the run row, so
        # the row every checkpoint rewrites stays small however large the chain is
        """CREATE TABLE te_run_data (
            run_id TEXT PRIMARY KEY,
            chain TEXT NOT NULL,
            input TEXT,
            meta TEXT NOT NULL DEFAULT '{}')""",
        "INSERT INTO te_run_data (run_id, chain, input, meta) SELECT run_id, chain, input, meta FROM te_runs",
        "ALTER TABLE te_runs DROP COLUMN chain",
        "ALTER TABLE te_runs DROP COLUMN input",
        "ALTER TABLE te_runs DROP COLUMN meta",
    ),
    (
        # 3: one-statement checkpoints. While a run holds its lease, a checkpoint may write only
        # its step row, which then also carries the run's next task and step count (`run_steps`
        # marks such a row); the run row catches up at the next full checkpoint, which records
        # the seq it is current to (`synced_seq`). Readers overlay the newest such row above
        # `synced_seq`, so a run killed between the two still reads and resumes exactly.
        "ALTER TABLE te_steps ADD COLUMN next_task TEXT",
        "ALTER TABLE te_steps ADD COLUMN run_steps INTEGER",
        "ALTER TABLE te_runs ADD COLUMN synced_seq INTEGER NOT NULL DEFAULT 0",
    ),
]

POSTGRES_MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE te_schema_version (
            component TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        """CREATE TABLE te_runs (
            run_id TEXT PRIMARY KEY,
            chain_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            chain JSON NOT NULL,
            input JSON,
            input_type TEXT NOT NULL,
            output JSON,
            output_type TEXT,
            error JSON,
            next_task TEXT,
            step_count INTEGER NOT NULL DEFAULT 0,
            request_id TEXT,
            totals JSON NOT NULL DEFAULT '{}',
            retry_state JSON NOT NULL DEFAULT '{}',
            lease_owner TEXT,
            lease_expires_at TIMESTAMPTZ,
            lease_ttl_s DOUBLE PRECISION,
            meta JSON NOT NULL DEFAULT '{}')""",
        "CREATE INDEX te_runs_by_created ON te_runs (created_at, run_id)",
        "CREATE INDEX te_runs_by_chain ON te_runs (chain_id, created_at, run_id)",
        """CREATE TABLE te_steps (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            task_id TEXT NOT NULL,
            status TEXT NOT NULL,
            step JSON,
            vars_delta JSON NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (run_id, seq))""",
        """CREATE TABLE te_chains (
            chain_id TEXT PRIMARY KEY,
            definition JSON NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE te_secrets (
            name TEXT PRIMARY KEY,
            ciphertext BYTEA NOT NULL,
            key_id TEXT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE te_remote_hooks (
            hook_id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            record JSON NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL)""",
    ),
    (
        # 2: chain, input and meta move to their own table (see the SQLite migration)
        """CREATE TABLE te_run_data (
            run_id TEXT PRIMARY KEY,
            chain JSON NOT NULL,
            input JSON,
            meta JSON NOT NULL DEFAULT '{}')""",
        "INSERT INTO te_run_data (run_id, chain, input, meta) SELECT run_id, chain, input, meta FROM te_runs",
        "ALTER TABLE te_runs DROP COLUMN chain",
        "ALTER TABLE te_runs DROP COLUMN input",
        "ALTER TABLE te_runs DROP COLUMN meta",
    ),
    # 3: nothing on PostgreSQL. SQLite's one-statement checkpoints save a page write per
    # step; a PostgreSQL checkpoint's cost is its commit round trip, which they would not change.
    (),
]

SCHEMA_VERSION = len(SQLITE_MIGRATIONS)
#: the tables migration 1 creates: finding any of them without the version table means
#: the database is not (or no longer) ours.
OWN_TABLES = ("te_runs", "te_steps", "te_chains", "te_secrets", "te_remote_hooks")


def newer_schema_message(where: str, found: int) -> str:
    """Why a store written by a newer taskengine is refused, and what to do."""
    return (
        f"{where} has run-store schema version {found}, newer than this taskengine knows "
        f"({SCHEMA_VERSION}); upgrade taskengine or point TASKENGINE_DB at another database"
    )
