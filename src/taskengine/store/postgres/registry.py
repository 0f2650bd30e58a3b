"""The PostgreSQL store's registries: stored chains, remote hooks and secret blobs.

A mixin of `PostgresRunStore` (it uses the store's pooled `_conn()`), kept apart so the
run/checkpoint code stays short.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from taskengine.errors import ConflictError, NotFoundError
from taskengine.store.codec import decode_cursor, dump_json, page_limit, page_of
from taskengine.store.postgres.connection import PostgresConnection
from taskengine.store.records import ChainRecord, Page, RemoteHookRecord
from taskengine.store.rules import hook_name

__all__ = ["PostgresRegistry"]

_CHAIN_COLS = "chain_id, definition, created_at, updated_at"
_HOOK_COLS = "hook_id, name, record, created_at, updated_at"


def _chain(row: tuple) -> ChainRecord:
    return ChainRecord(row[0], row[1], row[2].astimezone(UTC), row[3].astimezone(UTC))


def _hook(row: tuple) -> RemoteHookRecord:
    return RemoteHookRecord(row[0], row[1], row[2], row[3].astimezone(UTC), row[4].astimezone(UTC))


class PostgresRegistry(PostgresConnection):
    """Chains, remote hooks and secrets on the store's PostgreSQL pool."""

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
        async with self._conn() as conn:
            if create_only:
                sql = (
                    f"INSERT INTO te_chains ({_CHAIN_COLS}) VALUES (%s, %s::json, now(), now()) "
                    f"ON CONFLICT (chain_id) DO NOTHING RETURNING {_CHAIN_COLS}"
                )
            elif must_exist:
                sql = (
                    "UPDATE te_chains SET definition = %s::json, updated_at = now() "
                    f"WHERE chain_id = %s RETURNING {_CHAIN_COLS}"
                )
            else:
                sql = (
                    f"INSERT INTO te_chains ({_CHAIN_COLS}) VALUES (%s, %s::json, now(), now()) "
                    "ON CONFLICT (chain_id) DO UPDATE SET definition = excluded.definition, "
                    f"updated_at = excluded.updated_at RETURNING {_CHAIN_COLS}"
                )
            params = (text, chain_id) if must_exist and not create_only else (chain_id, text)
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
        if row is None and create_only:
            raise ConflictError(
                f"a chain with id {chain_id!r} already exists", chain_id=chain_id, field="id"
            )
        if row is None:
            raise NotFoundError(f"chain {chain_id!r} not found", chain_id=chain_id)
        return _chain(row)

    async def get_chain(self, chain_id: str) -> ChainRecord:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_CHAIN_COLS} FROM te_chains WHERE chain_id = %s", (chain_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"chain {chain_id!r} not found", chain_id=chain_id)
        return _chain(row)

    async def list_chains(self, *, limit: int = 50, cursor: str | None = None) -> Page[ChainRecord]:
        """Chains ordered by id."""
        limit = page_limit(limit)
        after = decode_cursor(cursor, (str,))[0] if cursor else ""
        async with self._conn() as conn:
            cur = await conn.execute(
                f'SELECT {_CHAIN_COLS} FROM te_chains WHERE chain_id COLLATE "C" > %s '
                'ORDER BY chain_id COLLATE "C" LIMIT %s',
                (after, limit + 1),
            )
            rows = await cur.fetchall()
        return page_of(rows, limit, _chain, lambda r: (r[0],))

    async def delete_chain(self, chain_id: str) -> None:
        async with self._conn() as conn:
            cur = await conn.execute("DELETE FROM te_chains WHERE chain_id = %s", (chain_id,))
            if cur.rowcount != 1:
                raise NotFoundError(f"chain {chain_id!r} not found", chain_id=chain_id)

    # --- secret blobs ----------------------------------------------------------------

    async def put_secret(self, name: str, ciphertext: bytes, key_id: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO te_secrets (name, ciphertext, key_id, updated_at) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, "
                "key_id = excluded.key_id, updated_at = excluded.updated_at",
                (name, bytes(ciphertext), key_id),
            )

    async def get_secret(self, name: str) -> tuple[bytes, str] | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT ciphertext, key_id FROM te_secrets WHERE name = %s", (name,)
            )
            row = await cur.fetchone()
        return (bytes(row[0]), row[1]) if row else None

    async def list_secret_names(self) -> list[str]:
        async with self._conn() as conn:
            cur = await conn.execute('SELECT name FROM te_secrets ORDER BY name COLLATE "C"')
            return [r[0] for r in await cur.fetchall()]

    async def delete_secret(self, name: str) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute("DELETE FROM te_secrets WHERE name = %s", (name,))
            return cur.rowcount == 1

    async def replace_all_secrets(self, items: dict[str, tuple[bytes, str]]) -> None:
        """Swap the whole set in one transaction (key rotation: all re-encrypted or none)."""
        rows = [(name, bytes(blob), key_id) for name, (blob, key_id) in items.items()]
        async with self._conn() as conn, conn.transaction():
            await conn.execute("DELETE FROM te_secrets")
            if rows:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO te_secrets (name, ciphertext, key_id, updated_at) VALUES (%s, %s, %s, now())",
                        rows,
                    )

    # --- remote hooks ----------------------------------------------------------------

    async def put_remote_hook(
        self, hook_id: str, record: dict[str, Any], *, create_only: bool = False
    ) -> RemoteHookRecord:
        """Create or replace a hook by id; a name another hook already uses is a conflict."""
        from psycopg import errors

        name = hook_name(record, hook_id)
        text = dump_json(record, what=f"remote hook {name!r}")
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT hook_id FROM te_remote_hooks WHERE hook_id = %s OR name = %s",
                (hook_id, name),
            )
            for (found,) in await cur.fetchall():
                if found != hook_id:
                    raise ConflictError(
                        f"a remote hook named {name!r} already exists", field="name"
                    )
                if create_only:
                    raise ConflictError(
                        f"a remote hook with id {hook_id!r} already exists", field="id"
                    )
            try:
                cur = await conn.execute(
                    f"INSERT INTO te_remote_hooks ({_HOOK_COLS}) VALUES (%s, %s, %s::json, now(), now()) "
                    "ON CONFLICT (hook_id) DO UPDATE SET name = excluded.name, record = excluded.record, "
                    f"updated_at = excluded.updated_at RETURNING {_HOOK_COLS}",
                    (hook_id, name, text),
                )
            except errors.UniqueViolation as exc:  # a concurrent writer took the name
                raise ConflictError(
                    f"a remote hook named {name!r} already exists", field="name"
                ) from exc
            row = await cur.fetchone()
            assert row is not None  # INSERT … RETURNING answers the row it inserted
            return _hook(row)

    async def get_remote_hook(self, hook_id: str) -> RemoteHookRecord:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_HOOK_COLS} FROM te_remote_hooks WHERE hook_id = %s", (hook_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"remote hook {hook_id!r} not found")
        return _hook(row)

    async def get_remote_hook_by_name(self, name: str) -> RemoteHookRecord:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_HOOK_COLS} FROM te_remote_hooks WHERE name = %s", (name,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"no remote hook named {name!r}")
        return _hook(row)

    async def list_remote_hooks(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> Page[RemoteHookRecord]:
        """Hooks ordered by name."""
        limit = page_limit(limit)
        after = decode_cursor(cursor, (str,))[0] if cursor else ""
        async with self._conn() as conn:
            cur = await conn.execute(
                f'SELECT {_HOOK_COLS} FROM te_remote_hooks WHERE name COLLATE "C" > %s '
                'ORDER BY name COLLATE "C" LIMIT %s',
                (after, limit + 1),
            )
            rows = await cur.fetchall()
        return page_of(rows, limit, _hook, lambda r: (r[1],))

    async def delete_remote_hook(self, hook_id: str) -> None:
        async with self._conn() as conn:
            cur = await conn.execute("DELETE FROM te_remote_hooks WHERE hook_id = %s", (hook_id,))
            if cur.rowcount != 1:
                raise NotFoundError(f"remote hook {hook_id!r} not found")
