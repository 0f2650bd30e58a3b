"""Opening a run store from its URL: SQLite for a file, PostgreSQL for `postgresql://…`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskengine.errors import StoreError
from taskengine.store.paths import STORE_URL_FORMS, default_db_url, default_sqlite_file, sqlite_path

if TYPE_CHECKING:
    from taskengine.store.base import RunStore

__all__ = ["open_store", "store_from_url"]


def store_from_url(url: str | None = None) -> RunStore:
    """An unopened store for `url` (default: `default_db_url()`)."""
    url = url or default_db_url()
    if "://" not in url:
        url = f"sqlite:///{sqlite_path(url)}"
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from taskengine.store.sqlite import SQLiteRunStore

        path = sqlite_path(url)
        return SQLiteRunStore(path, create_tree=path == default_sqlite_file())
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        from taskengine.store.postgres import PostgresRunStore

        return PostgresRunStore(url)
    raise StoreError(f"unsupported store URL {url!r}: use {STORE_URL_FORMS}")


async def open_store(url: str | None = None) -> RunStore:
    """An opened store for `url` (migrated and ready); close it with `aclose()`."""
    store = store_from_url(url)
    await store.open()
    return store
