"""A command's loading phase made cheaper: no garbage collection, no pydantic plugin search.

`loading()` wraps what a command does before its real work (imports, the chain and settings
models). Garbage collection is paused inside it (loading makes hundreds of thousands of objects
and almost no garbage; the collector would walk them ~100 times) and the objects are then frozen
(`gc.freeze`), so later collections skip them.

The first time pydantic builds a validator it looks for plugins (the `pydantic` entry-point
group) with `importlib.metadata`, reading the metadata of every installed distribution.
`pydantic_plugins_skipped` reads the `entry_points.txt` files on `sys.path` itself (~2 ms instead
of ~20 ms); when none declares that group, pydantic's search would find nothing, so it sets
`PYDANTIC_DISABLE_PLUGINS` for the block (pydantic then skips the search) and removes it
afterwards, so processes started later do not inherit it and a validator built later searches
as usual. Anything it cannot read the same way (a zip or an egg on the path, a finder that lists
distributions itself) leaves pydantic's search alone, as does a `PYDANTIC_DISABLE_PLUGINS` the
user set.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.machinery import PathFinder

__all__ = ["loading", "may_have_pydantic_plugins", "pydantic_plugins_skipped"]

_VARIABLE = "PYDANTIC_DISABLE_PLUGINS"
_GROUP = "pydantic"


def _declares_group(path: str) -> bool:
    """Whether the entry_points.txt at `path` (if any) has a `[pydantic]` section."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                line = line.strip()
                if line.startswith("[") and line.endswith("]") and line[1:-1].strip() == _GROUP:
                    return True
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unreadable here: let pydantic look
    return False


def _folder_may_have_plugins(folder: str) -> bool:
    if folder.lower().endswith(".egg"):
        return True
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True  # a zip file on the path: its distributions are not read here
    except OSError:
        return True
    return any(
        _declares_group(os.path.join(folder, name, "entry_points.txt"))
        for name in names
        if name.lower().endswith((".dist-info", ".egg-info"))
    )


@cache
def may_have_pydantic_plugins() -> bool:
    """False only when no distribution on `sys.path` declares a `pydantic` entry point."""
    for finder in sys.meta_path:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            return True  # a finder of another kind may list distributions of its own
    return any(_folder_may_have_plugins(entry or ".") for entry in sys.path)


@contextmanager
def pydantic_plugins_skipped() -> Iterator[None]:
    """Within the block pydantic does not search for plugins, when it would find none."""
    if _VARIABLE in os.environ or may_have_pydantic_plugins():
        yield
        return
    os.environ[_VARIABLE] = "1"
    try:
        yield
    finally:
        os.environ.pop(_VARIABLE, None)


@contextmanager
def loading() -> Iterator[None]:
    """Garbage collection paused (then the objects frozen) and pydantic's plugin search skipped."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        with pydantic_plugins_skipped():
            yield
    finally:
        if collecting:
            gc.freeze()
            gc.enable()
