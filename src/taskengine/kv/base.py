"""The async key-value protocol, its shared base class and the `open_kv(url)` factory.

A `KVStore` offers Redis-shaped operations (strings with TTL, lists, sets) because that is what
the activity sink needs and what every backend can do: memory and SQLite emulate them, Redis
has them natively. Semantics follow Redis so the three backends agree: `lrange`/`ltrim` take
inclusive indices (negative counts from the end), an emptied list or set disappears, writing a
string clears its TTL, and an operation on a key of the wrong kind raises `StoreError`.
"""

from __future__ import annotations

import builtins
import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from taskengine.errors import StoreError

__all__ = ["BaseKV", "KVBatch", "KVStore", "SyncBackedKV", "Value", "open_kv"]

Value = bytes | str

#: Write operations a batch may hold (reads need their answer before the next step anyway).
_BATCH_OPS = frozenset({"set", "delete", "expire", "lpush", "rpush", "ltrim", "sadd", "srem"})


@runtime_checkable
class KVStore(Protocol):
    """Async key-value store with strings, lists and sets; keys live under `namespace`."""

    namespace: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: Value, ttl: float | None = None) -> None: ...
    async def delete(self, *keys: str) -> int: ...
    async def exists(self, key: str) -> bool: ...
    async def expire(self, key: str, ttl: float) -> bool: ...
    async def lpush(self, key: str, *values: Value) -> int: ...
    async def rpush(self, key: str, *values: Value) -> int: ...
    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]: ...
    async def ltrim(self, key: str, start: int, stop: int) -> None: ...
    async def llen(self, key: str) -> int: ...
    async def sadd(self, key: str, *members: Value) -> int: ...
    async def srem(self, key: str, *members: Value) -> int: ...
    async def smembers(self, key: str) -> builtins.set[bytes]: ...
    async def keys(self, prefix: str = "") -> list[str]: ...
    async def clear(self) -> int: ...
    async def get_json(self, key: str) -> Any: ...
    async def set_json(self, key: str, value: Any, ttl: float | None = None) -> None: ...
    def batch(self) -> KVBatch: ...
    async def aclose(self) -> None: ...


def to_bytes(value: Value) -> bytes:
    """Values are bytes; text is stored as UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise StoreError(f"KV values must be bytes or str, got {type(value).__name__}")


def check_ttl(ttl: float | None) -> float | None:
    """A TTL is a positive number of seconds (or None for no expiry)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
        raise StoreError(f"ttl must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


def slice_bounds(start: int, stop: int, length: int) -> tuple[int, int]:
    """Redis inclusive [start, stop] (negatives from the end) as a Python slice [lo, hi)."""
    if start < 0:
        start = max(length + start, 0)
    if stop < 0:
        stop = length + stop
    stop = min(stop, length - 1)
    if start > stop:
        return 0, 0
    return start, stop + 1


class KVBatch:
    """Write operations queued and sent together: one Redis pipeline, one SQLite transaction.

    Use as `async with kv.batch() as b: b.lpush(...); b.ltrim(...)`; the results (in order,
    as the single calls would return them) are in `b.results` afterwards. A batch saves round
    trips; it does not roll back on Redis or memory if one operation hits a wrong-kind key.
    """

    __slots__ = ("_kv", "_ops", "results")

    def __init__(self, kv: BaseKV) -> None:
        self._kv = kv
        self._ops: list[tuple[Any, ...]] = []
        self.results: list[Any] = []

    def __len__(self) -> int:
        return len(self._ops)

    def set(self, key: str, value: Value, ttl: float | None = None) -> KVBatch:
        self._ops.append(("set", key, to_bytes(value), check_ttl(ttl)))
        return self

    def delete(self, *keys: str) -> KVBatch:
        self._ops.append(("delete", keys))
        return self

    def expire(self, key: str, ttl: float) -> KVBatch:
        self._ops.append(("expire", key, float(ttl)))
        return self

    def lpush(self, key: str, *values: Value) -> KVBatch:
        self._ops.append(("lpush", key, [to_bytes(v) for v in values]))
        return self

    def rpush(self, key: str, *values: Value) -> KVBatch:
        self._ops.append(("rpush", key, [to_bytes(v) for v in values]))
        return self

    def ltrim(self, key: str, start: int, stop: int) -> KVBatch:
        self._ops.append(("ltrim", key, int(start), int(stop)))
        return self

    def sadd(self, key: str, *members: Value) -> KVBatch:
        self._ops.append(("sadd", key, [to_bytes(m) for m in members]))
        return self

    def srem(self, key: str, *members: Value) -> KVBatch:
        self._ops.append(("srem", key, [to_bytes(m) for m in members]))
        return self

    async def execute(self) -> list[Any]:
        """Send the queued operations; returns one result per operation."""
        ops, self._ops = self._ops, []
        self.results = await self._kv._run_batch(ops) if ops else []
        return self.results

    async def __aenter__(self) -> KVBatch:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.execute()


class BaseKV:
    """Namespacing, JSON helpers and batching shared by every backend."""

    namespace: str = ""

    def _k(self, key: str) -> str:
        return self.namespace + key

    def _strip(self, full_key: str) -> str:
        return full_key[len(self.namespace) :]

    def batch(self) -> KVBatch:
        return KVBatch(self)

    async def get_json(self, key: str) -> Any:
        """The JSON value at `key`, or None when it is missing."""
        raw = await self.get(key)  # type: ignore[attr-defined]
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"KV key {key!r} does not hold JSON: {exc}") from exc

    async def set_json(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value` as compact JSON."""
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        await self.set(key, data, ttl)  # type: ignore[attr-defined]

    async def _run_batch(self, ops: list[tuple[Any, ...]]) -> list[Any]:
        raise NotImplementedError

    async def __aenter__(self) -> BaseKV:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.aclose()  # type: ignore[attr-defined]


class SyncBackedKV(BaseKV):
    """A backend whose operations are quick synchronous calls (memory, local SQLite).

    Subclasses implement the `_x_*` primitives on namespaced keys plus `_reading()` and
    `_writing()` context managers (a transaction for SQLite); this class turns them into the
    async protocol. Nothing here awaits, so each call is atomic within the event loop.
    """

    def _reading(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _writing(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    # The primitives every subclass provides (keys already namespaced, values already bytes).
    def _x_get(self, k: str) -> bytes | None:
        raise NotImplementedError

    def _x_set(self, k: str, v: bytes, ttl: float | None) -> None:
        raise NotImplementedError

    def _x_delete(self, ks: tuple[str, ...]) -> int:
        raise NotImplementedError

    def _x_exists(self, k: str) -> bool:
        raise NotImplementedError

    def _x_expire(self, k: str, ttl: float) -> bool:
        raise NotImplementedError

    def _x_push(self, k: str, vs: list[bytes], left: bool) -> int:
        raise NotImplementedError

    def _x_lrange(self, k: str, start: int, stop: int) -> list[bytes]:
        raise NotImplementedError

    def _x_ltrim(self, k: str, start: int, stop: int) -> None:
        raise NotImplementedError

    def _x_llen(self, k: str) -> int:
        raise NotImplementedError

    def _x_sadd(self, k: str, ms: list[bytes]) -> int:
        raise NotImplementedError

    def _x_srem(self, k: str, ms: list[bytes]) -> int:
        raise NotImplementedError

    def _x_smembers(self, k: str) -> builtins.set[bytes]:
        raise NotImplementedError

    def _x_keys(self, prefix: str) -> list[str]:
        raise NotImplementedError

    async def get(self, key: str) -> bytes | None:
        with self._reading():
            return self._x_get(self._k(key))

    async def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        data, ttl = to_bytes(value), check_ttl(ttl)
        with self._writing():
            self._x_set(self._k(key), data, ttl)

    async def delete(self, *keys: str) -> int:
        with self._writing():
            return self._x_delete(tuple(self._k(k) for k in keys))

    async def exists(self, key: str) -> bool:
        with self._reading():
            return self._x_exists(self._k(key))

    async def expire(self, key: str, ttl: float) -> bool:
        with self._writing():
            return self._x_expire(self._k(key), float(ttl))

    async def lpush(self, key: str, *values: Value) -> int:
        data = [to_bytes(v) for v in values]
        with self._writing():
            return self._x_push(self._k(key), data, True)

    async def rpush(self, key: str, *values: Value) -> int:
        data = [to_bytes(v) for v in values]
        with self._writing():
            return self._x_push(self._k(key), data, False)

    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        with self._reading():
            return self._x_lrange(self._k(key), int(start), int(stop))

    async def ltrim(self, key: str, start: int, stop: int) -> None:
        with self._writing():
            self._x_ltrim(self._k(key), int(start), int(stop))

    async def llen(self, key: str) -> int:
        with self._reading():
            return self._x_llen(self._k(key))

    async def sadd(self, key: str, *members: Value) -> int:
        data = [to_bytes(m) for m in members]
        with self._writing():
            return self._x_sadd(self._k(key), data)

    async def srem(self, key: str, *members: Value) -> int:
        data = [to_bytes(m) for m in members]
        with self._writing():
            return self._x_srem(self._k(key), data)

    async def smembers(self, key: str) -> builtins.set[bytes]:
        with self._reading():
            return self._x_smembers(self._k(key))

    async def keys(self, prefix: str = "") -> list[str]:
        with self._reading():
            return sorted(self._strip(k) for k in self._x_keys(self._k(prefix)))

    async def clear(self) -> int:
        """Delete every key under this store's namespace."""
        with self._writing():
            return self._x_delete(tuple(self._x_keys(self.namespace)))

    async def _run_batch(self, ops: list[tuple[Any, ...]]) -> list[Any]:
        results: list[Any] = []
        with self._writing():
            for name, key, *args in ops:
                if name == "delete":
                    results.append(self._x_delete(tuple(self._k(k) for k in key)))
                elif name in ("lpush", "rpush"):
                    results.append(self._x_push(self._k(key), args[0], name == "lpush"))
                else:
                    results.append(getattr(self, f"_x_{name}")(self._k(key), *args))
        return results


def kind_error(key: str, has: str, wants: str) -> StoreError:
    return StoreError(f"KV key {key!r} holds a {has}, not a {wants}")


async def open_kv(url: str, *, namespace: str | None = None) -> BaseKV:
    """Open a store from a URL: `memory://`, `sqlite:///path/file.db`, `redis://host:port/db`.

    Async like `open_store()`; a Redis client connects on first use.

    `namespace` (or a `?namespace=` query parameter) prefixes every key, so several users can
    share one database. `sqlite:///abs/file.db` is an absolute path and `sqlite://rel/file.db`
    a relative one; `~` is expanded.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query, keep_blank_values=True)
    ns = namespace if namespace is not None else (query.pop("namespace", [""])[-1])
    query.pop("namespace", None)
    if scheme == "memory":
        from taskengine.kv.memory import MemoryKV

        return MemoryKV(namespace=ns)
    if scheme == "sqlite":
        from taskengine.kv.sqlite import SQLiteKV

        raw = parts.netloc + parts.path
        if not raw or raw == "/":
            raise StoreError(f"KV URL {url!r} names no file; use sqlite:///path/to/file.db")
        return SQLiteKV(Path(raw).expanduser(), namespace=ns)
    if scheme in ("redis", "rediss", "unix"):
        from taskengine.kv.redis import RedisKV

        rest = urlencode(query, doseq=True)
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        return RedisKV(clean, namespace=ns)
    raise StoreError(
        f"unsupported KV URL {url!r}; expected memory://, sqlite:///path/file.db or redis://host:port/db"
    )
