"""The SQLite store's registries: stored chains, remote hooks and secret blobs.

A mixin of `SQLiteRunStore`, kept apart so the run/checkpoint code stays short; it uses
the store's `_write` (one transaction) and `_read` helpers.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from taskengine.errors import ConflictError, NotFoundError
from taskengine.store.codec import decode_cursor, dump_json, page_limit, page_of
from taskengine.store.records import ChainRecord, Page, RemoteHookRecord, from_us
from taskengine.store.rules import hook_name
from taskengine.store.sqlite.connection import SQLiteConnection
from taskengine.store.sqlite.sql import now_us

__all__ = ["SQLiteRegistry"]

_CHAIN_COLS = "chain_id, definition, created_at, updated_at"
_HOOK_COLS = "hook_id, name, record, created_at, updated_at"


def _chain(row: tuple) -> ChainRecord:
    return ChainRecord(row[0], json.loads(row[1]), from_us(row[2]), from_us(row[3]))


def _hook(row: tuple) -> RemoteHookRecord:
    return RemoteHookRecord(row[0], row[1], json.loads(row[2]), from_us(row[3]), from_us(row[4]))


class SQLiteRegistry(SQLiteConnection):
    """Chains, remote hooks and secrets on the store's SQLite connection."""

    # --- chains ----------------------------------------------------------------------

    async def put_chain(
        self,
        chain_id: str,
        definition: dict[str, Any],
        *,
        create_only: bool = False,
        must_exist: bool = False,
    ) -> ChainRecord:
        """Store a chain; `create_only` refuses an existing id, `must_exist` an unknown one."""
        text = dump_json(definition, what=f"chain {chain_id!r}")

        def put(cur: sqlite3.Cursor) -> ChainRecord:
            now = now_us()
            exists = cur.execute(
                "SELECT 1 FROM te_chains WHERE chain_id = ?", (chain_id,)
            ).fetchone()
            if exists and create_only:
                raise ConflictError(
                    f"a chain with id {chain_id!r} already exists", chain_id=chain_id, field="id"
                )
            if not exists and must_exist:
                raise NotFoundError(f"chain {chain_id!r} not found", chain_id=chain_id)
            cur.execute(
                "INSERT INTO te_chains (chain_id, definition, created_at, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET "
                "definition = excluded.definition, updated_at = excluded.updated_at",
                (chain_id, text, now, now),
            )
            row = cur.execute(
                f"SELECT {_CHAIN_COLS} FROM te_chains WHERE chain_id = ?",
                (chain_id,),
            ).fetchone()
            return _chain(row)

        return self._write(put)

    async def get_chain(self, chain_id: str) -> ChainRecord:
        rows = self._read(
            f"SELECT {_CHAIN_COLS} FROM te_chains WHERE chain_id = ?",
            (chain_id,),
        )
        if not rows:
            raise NotFoundError(f"chain {chain_id!r} not found", chain_id=chain_id)
        return _chain(rows[0])

    async def list_chains(self, *, limit: int = 50, cursor: str | None = None) -> Page[ChainRecord]:
        """Chains ordered by id."""
        limit = page_limit(limit)
        after = decode_cursor(cursor, (str,))[0] if cursor else ""
        rows = self._read(
            f"SELECT {_CHAIN_COLS} FROM te_chains WHERE chain_id > ? ORDER BY chain_id LIMIT ?",
            (after, limit + 1),
        )
        return page_of(rows, limit, _chain, lambda r: (r[0],))

    async def delete_chain(self, chain_id: str) -> None:
        def delete(cur: sqlite3.Cursor) -> None:
            cur.execute("DELETE FROM te_chains WHERE chain_id = ?", (chain_id,))
            if cur.rowcount != 1:
                raise NotFoundError(f"chain {chain_id!r} not found", chain_id=chain_id)

        self._write(delete)

    # --- secret blobs ----------------------------------------------------------------

    async def put_secret(self, name: str, ciphertext: bytes, key_id: str) -> None:
        def put(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "INSERT INTO te_secrets (name, ciphertext, key_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, "
                "key_id = excluded.key_id, updated_at = excluded.updated_at",
                (name, bytes(ciphertext), key_id, now_us()),
            )

        self._write(put)

    async def get_secret(self, name: str) -> tuple[bytes, str] | None:
        rows = self._read("SELECT ciphertext, key_id FROM te_secrets WHERE name = ?", (name,))
        return (bytes(rows[0][0]), rows[0][1]) if rows else None

    async def list_secret_names(self) -> list[str]:
        return [r[0] for r in self._read("SELECT name FROM te_secrets ORDER BY name")]

    async def delete_secret(self, name: str) -> bool:
        def delete(cur: sqlite3.Cursor) -> bool:
            cur.execute("DELETE FROM te_secrets WHERE name = ?", (name,))
            return cur.rowcount == 1

        return self._write(delete)

    async def replace_all_secrets(self, items: dict[str, tuple[bytes, str]]) -> None:
        """Swap the whole set in one transaction (key rotation: all re-encrypted or none)."""
        now = now_us()
        rows = [(name, bytes(blob), key_id, now) for name, (blob, key_id) in items.items()]

        def replace(cur: sqlite3.Cursor) -> None:
            cur.execute("DELETE FROM te_secrets")
            cur.executemany(
                "INSERT INTO te_secrets (name, ciphertext, key_id, updated_at) VALUES (?, ?, ?, ?)",
                rows,
            )

        self._write(replace)

    # --- remote hooks ----------------------------------------------------------------

    async def put_remote_hook(
        self, hook_id: str, record: dict[str, Any], *, create_only: bool = False
    ) -> RemoteHookRecord:
        """Create or replace a hook by id; a name another hook already uses is a conflict."""
        name = hook_name(record, hook_id)
        text = dump_json(record, what=f"remote hook {name!r}")

        def put(cur: sqlite3.Cursor) -> RemoteHookRecord:
            now = now_us()
            exists = cur.execute(
                "SELECT 1 FROM te_remote_hooks WHERE hook_id = ?", (hook_id,)
            ).fetchone()
            if exists and create_only:
                raise ConflictError(f"a remote hook with id {hook_id!r} already exists", field="id")
            other = cur.execute(
                "SELECT hook_id FROM te_remote_hooks WHERE name = ? AND hook_id <> ?",
                (name, hook_id),
            ).fetchone()
            if other:
                raise ConflictError(f"a remote hook named {name!r} already exists", field="name")
            cur.execute(
                "INSERT INTO te_remote_hooks (hook_id, name, record, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (hook_id) DO UPDATE SET name = excluded.name, "
                "record = excluded.record, updated_at = excluded.updated_at",
                (hook_id, name, text, now, now),
            )
            row = cur.execute(
                f"SELECT {_HOOK_COLS} FROM te_remote_hooks WHERE hook_id = ?", (hook_id,)
            ).fetchone()
            return _hook(row)

        return self._write(put)

    async def get_remote_hook(self, hook_id: str) -> RemoteHookRecord:
        rows = self._read(f"SELECT {_HOOK_COLS} FROM te_remote_hooks WHERE hook_id = ?", (hook_id,))
        if not rows:
            raise NotFoundError(f"remote hook {hook_id!r} not found")
        return _hook(rows[0])

    async def get_remote_hook_by_name(self, name: str) -> RemoteHookRecord:
        rows = self._read(f"SELECT {_HOOK_COLS} FROM te_remote_hooks WHERE name = ?", (name,))
        if not rows:
            raise NotFoundError(f"no remote hook named {name!r}")
        return _hook(rows[0])

    async def list_remote_hooks(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> Page[RemoteHookRecord]:
        """Hooks ordered by name."""
        limit = page_limit(limit)
        after = decode_cursor(cursor, (str,))[0] if cursor else ""
        rows = self._read(
            f"SELECT {_HOOK_COLS} FROM te_remote_hooks WHERE name > ? ORDER BY name LIMIT ?",
            (after, limit + 1),
        )
        return page_of(rows, limit, _hook, lambda r: (r[1],))

    async def delete_remote_hook(self, hook_id: str) -> None:
        def delete(cur: sqlite3.Cursor) -> None:
            cur.execute("DELETE FROM te_remote_hooks WHERE hook_id = ?", (hook_id,))
            if cur.rowcount != 1:
                raise NotFoundError(f"remote hook {hook_id!r} not found")

        self._write(delete)
