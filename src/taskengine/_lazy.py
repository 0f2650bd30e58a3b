"""Lazy package exports: a name is imported from its module on first access, then cached.

A package lists where each lazy name lives and installs the pair this returns::

    __getattr__, __dir__ = lazy_exports(__name__, {"RedisKV": "taskengine.kv.redis"})

Targets are module paths, absolute or relative to the package (`".redis"`). Heavy modules
(aiohttp, FastAPI, redis-py) so load only when a name from them is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    module_name: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for package `module_name`, whose names load from `where`."""
    where = dict(where)

    def __getattr__(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target, module_name), name)
        setattr(sys.modules[module_name], name, value)  # the next access skips this hook
        return value

    def __dir__() -> list[str]:
        module = sys.modules[module_name]
        return sorted(set(getattr(module, "__all__", ())) | set(where))

    return __getattr__, __dir__
