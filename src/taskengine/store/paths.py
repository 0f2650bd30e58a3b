"""Where run stores live: the default SQLite file, the accepted URL forms, their directories.

Kept apart from `store.base` so the KV backends can share it without importing the stores.
"""

from __future__ import annotations

import os
import re

from taskengine.errors import StoreError

__all__ = [
    "STORE_URL_FORMS",
    "default_db_url",
    "default_sqlite_file",
    "prepare_sqlite_dir",
    "sqlite_path",
]


def default_sqlite_file() -> str:
    """Where the run store lives when nothing says otherwise: the user's data directory."""
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("taskengine"), "taskengine.db")


def default_db_url() -> str:
    """`TASKENGINE_DB`, else an SQLite file in the user's data directory (read when called)."""
    url = os.environ.get("TASKENGINE_DB")
    if url:
        return url
    return f"sqlite:///{default_sqlite_file()}"


#: `postgresql:/host/db` or `sqlite:x.db`: meant as a URL, not a file name (a drive letter is fine)
_MISSPELT_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")

#: the store URL forms, for error messages and docs
STORE_URL_FORMS = (
    "sqlite:///abs/path.db, sqlite://rel/path.db, a plain file path (SQLite), "
    "or postgresql://user@host/db"
)


def sqlite_path(url: str) -> str:
    """The file path in `sqlite:///abs/path.db` (also `sqlite:////abs`, `sqlite:///~/x.db`,
    `sqlite://rel/path.db`) or in a plain path such as `/data/runs.db` or `~/runs.db`."""
    if "://" not in url:
        if url.strip() in ("", ":memory:") or _MISSPELT_URL.match(url):
            raise StoreError(f"store URL {url!r} is not one of: {STORE_URL_FORMS}")
        return os.path.abspath(os.path.expanduser(url))
    rest = url[len("sqlite://") :]
    if not rest or rest in ("/", "/:memory:", ":memory:"):
        raise StoreError(f"store URL {url!r} names no database file (use sqlite:///abs/path.db)")
    if rest.startswith("/~"):
        return os.path.expanduser(rest[1:])
    if rest.startswith("/"):
        return "/" + rest.lstrip("/")
    return os.path.abspath(rest)


def prepare_sqlite_dir(path: str, *, create_tree: bool = False) -> None:
    """Make sure the directory of an SQLite file exists before it is created.

    Only the file's own directory is created (the default location creates its whole tree): a
    mistyped `sqlite:////nonexistent/dir/x.db` names what is missing instead of building it.
    """
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(parent):
        return
    try:
        if create_tree:
            os.makedirs(parent, exist_ok=True)
        elif os.path.isdir(os.path.dirname(parent)):
            os.mkdir(parent)
        else:
            raise StoreError(
                f"cannot create {path}: directory {os.path.dirname(parent)} does not exist "
                "(create it first, or fix the path in TASKENGINE_DB / db)"
            )
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create directory {parent} for {path}: {exc.strerror}") from exc
