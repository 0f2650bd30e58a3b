"""Key-value stores: one async protocol, three backends (memory, SQLite, Redis).

`await open_kv("memory://" | "sqlite:///path/file.db" | "redis://host:6379/0")` picks one. Only the
protocol is imported here; each backend (and redis-py) loads when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskengine._lazy import lazy_exports
from taskengine.kv.base import BaseKV, KVBatch, KVStore, Value, open_kv

if TYPE_CHECKING:
    from taskengine.kv.memory import MemoryKV
    from taskengine.kv.redis import RedisKV
    from taskengine.kv.sqlite import SQLiteKV

__all__ = ["BaseKV", "KVBatch", "KVStore", "MemoryKV", "RedisKV", "SQLiteKV", "Value", "open_kv"]

_LAZY = {
    "MemoryKV": "taskengine.kv.memory",
    "RedisKV": "taskengine.kv.redis",
    "SQLiteKV": "taskengine.kv.sqlite",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
