"""The procrastinate App over the PostgreSQL run store, and its schema.

The queue's tables live next to the run store's (same database, same `?schema=`), so a run
and its job can be written in one transaction and workers need no other infrastructure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from taskengine.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from taskengine.workers.settings import QueueSettings

__all__ = ["QueueApp", "queue_conninfo", "require_procrastinate"]

INSTALL_HINT = "pip install 'taskengine[queue]'"
#: the task every queued run is executed by (its name is stored in each job row)
RUN_TASK = "taskengine.run"
STALLED_TASK = "taskengine.retry_stalled"


def require_procrastinate(what: str = "the run queue") -> Any:
    """The procrastinate module, or a ConfigError saying which extra to install."""
    try:
        import procrastinate
    except ImportError as exc:
        raise ConfigError(f"{what} needs procrastinate: {INSTALL_HINT}") from exc
    return procrastinate


def queue_conninfo(db_url: str | None) -> str:
    """libpq conninfo for the queue from the run store URL; only PostgreSQL can hold a queue."""
    url = (db_url or "").strip()
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme not in ("postgresql", "postgres"):
        shown = url.split("@")[-1] if url else "the default SQLite store"
        raise ConfigError(
            f"the run queue needs a PostgreSQL run store: set TASKENGINE_DB=postgresql://… "
            f"(now: {shown})"
        )
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    schema = query.pop("schema", None)
    query.pop("pool_size", None)
    if schema:
        # the queue's tables and functions live in the store's schema too
        extra = f"-c search_path={schema}"
        query["options"] = f"{query['options']} {extra}" if query.get("options") else extra
    return urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(query, quote_via=quote), "")
    )


async def _autocommit(connection: Any) -> None:
    """Each queue statement commits by itself (they are single statements, fetching included).

    In psycopg's default mode a fetched job's row lock lasts until the client sends COMMIT;
    a worker frozen in between (a paused VM, SIGSTOP) would hold it, and every other worker
    would skip that job for as long as the frozen one stays frozen.
    """
    await connection.set_autocommit(True)


class QueueApp:
    """A procrastinate App with taskengine's two tasks registered, opened and closed together."""

    def __init__(
        self, db_url: str | None, settings: QueueSettings, *, lease_ttl: float = 30.0
    ) -> None:
        procrastinate = require_procrastinate()
        from taskengine.workers import jobs

        self.settings = settings
        self.conninfo = queue_conninfo(db_url)
        connector = procrastinate.PsycopgConnector(
            conninfo=self.conninfo, min_size=1, max_size=4, configure=_autocommit
        )
        self.app = procrastinate.App(connector=connector)
        self.run_task = jobs.register(self.app, settings, lease_ttl=lease_ttl)

    async def open(self, *, prepare_schema: bool = True) -> QueueApp:
        try:
            await self.app.open_async()
        except Exception as exc:
            raise StoreError(f"cannot connect to the run queue: {exc}") from exc
        if prepare_schema:
            await self.ensure_schema()
        return self

    async def aclose(self) -> None:
        await self.app.close_async()

    async def __aenter__(self) -> QueueApp:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ensure_schema(self) -> None:
        """Create procrastinate's tables once; several processes starting together wait in turn."""
        import psycopg
        from procrastinate.schema import SchemaManager

        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo)
            async with conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('taskengine.queue'))")
                cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                row = await cur.fetchone()
                if row is None or not row[0]:
                    await conn.execute(SchemaManager.get_schema())
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare the run queue's tables: {exc}") from exc
