"""In-process KV store: dicts, deques and sets, with TTL checked when a key is touched."""

from __future__ import annotations

import time
from collections import deque
from contextlib import nullcontext
from itertools import islice
from typing import Any

from taskengine.kv.base import SyncBackedKV, kind_error, slice_bounds

__all__ = ["MemoryKV"]

_KIND: dict[type, str] = {bytes: "string", deque: "list", set: "set"}

#: Every this many writes, expired keys nobody reads again are swept out.
_SWEEP_EVERY = 1024


class MemoryKV(SyncBackedKV):
    """A KV store that lives and dies with the process (tests, single-process servers)."""

    def __init__(self, *, namespace: str = "") -> None:
        self.namespace = namespace
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._writes = 0

    def __repr__(self) -> str:
        return f"MemoryKV(namespace={self.namespace!r}, keys={len(self._data)})"

    def _reading(self) -> nullcontext[None]:
        return nullcontext()

    def _writing(self) -> nullcontext[None]:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0 and self._expires:
            self._sweep()
        return nullcontext()

    def _sweep(self) -> None:
        now = time.monotonic()
        for k in [k for k, at in self._expires.items() if at <= now]:
            self._drop(k)

    def _drop(self, k: str) -> bool:
        self._expires.pop(k, None)
        return self._data.pop(k, None) is not None

    def _live(self, k: str) -> Any:
        at = self._expires.get(k)
        if at is not None and at <= time.monotonic():
            self._drop(k)
            return None
        return self._data.get(k)

    def _typed(self, k: str, cls: type, *, create: bool = False) -> Any:
        value = self._live(k)
        if value is None:
            if create:
                value = self._data[k] = cls()
            return value
        if type(value) is not cls:
            raise kind_error(self._strip(k), _KIND[type(value)], _KIND[cls])
        return value

    def _x_get(self, k: str) -> bytes | None:
        return self._typed(k, bytes)

    def _x_set(self, k: str, v: bytes, ttl: float | None) -> None:
        self._data[k] = v
        if ttl is None:
            self._expires.pop(k, None)
        else:
            self._expires[k] = time.monotonic() + ttl

    def _x_delete(self, ks: tuple[str, ...]) -> int:
        return sum(1 for k in ks if self._live(k) is not None and self._drop(k))

    def _x_exists(self, k: str) -> bool:
        return self._live(k) is not None

    def _x_expire(self, k: str, ttl: float) -> bool:
        if self._live(k) is None:
            return False
        if ttl <= 0:
            self._drop(k)
        else:
            self._expires[k] = time.monotonic() + ttl
        return True

    def _x_push(self, k: str, vs: list[bytes], left: bool) -> int:
        if not vs:
            return self._x_llen(k)
        items: deque[bytes] = self._typed(k, deque, create=True)
        if left:
            items.extendleft(vs)
        else:
            items.extend(vs)
        return len(items)

    def _x_lrange(self, k: str, start: int, stop: int) -> list[bytes]:
        items = self._typed(k, deque)
        if not items:
            return []
        lo, hi = slice_bounds(start, stop, len(items))
        return list(islice(items, lo, hi))

    def _x_ltrim(self, k: str, start: int, stop: int) -> None:
        items = self._typed(k, deque)
        if not items:
            return
        lo, hi = slice_bounds(start, stop, len(items))
        # Trim from both ends in place: cheap when only a few items fall off the end.
        for _ in range(len(items) - hi):
            items.pop()
        for _ in range(lo):
            items.popleft()
        if not items:
            self._drop(k)

    def _x_llen(self, k: str) -> int:
        items = self._typed(k, deque)
        return len(items) if items else 0

    def _x_sadd(self, k: str, ms: list[bytes]) -> int:
        if not ms:
            return 0
        members: set[bytes] = self._typed(k, set, create=True)
        before = len(members)
        members.update(ms)
        return len(members) - before

    def _x_srem(self, k: str, ms: list[bytes]) -> int:
        members = self._typed(k, set)
        if not members:
            return 0
        before = len(members)
        members.difference_update(ms)
        if not members:
            self._drop(k)
        return before - len(members)

    def _x_smembers(self, k: str) -> set[bytes]:
        members = self._typed(k, set)
        return set(members) if members else set()

    def _x_keys(self, prefix: str) -> list[str]:
        return [k for k in list(self._data) if k.startswith(prefix) and self._live(k) is not None]

    async def aclose(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""
        return None
