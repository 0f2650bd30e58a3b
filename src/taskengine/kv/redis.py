"""KV store on Redis (redis-py asyncio): native TTL, lists and sets; batches are MULTI/EXEC."""

from __future__ import annotations

import builtins
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from taskengine.errors import StoreError
from taskengine.kv.base import BaseKV, Value, check_ttl, to_bytes

__all__ = ["RedisKV"]

_GLOB_SPECIAL = "\\*?[]"


def _ms(ttl: float) -> int:
    """Seconds to whole milliseconds, never rounding a positive TTL down to 'expire now'."""
    return max(1, math.ceil(ttl * 1000)) if ttl > 0 else 0


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


class RedisKV(BaseKV):
    """A KV store on a Redis server; every key is prefixed with `namespace`."""

    def __init__(self, url: str, *, namespace: str = "", connect_timeout: float = 5.0) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.exceptions import RedisError
        except ImportError as exc:
            raise StoreError(
                "the Redis KV backend needs the redis package: pip install 'taskengine[redis]'"
            ) from exc
        self.namespace = namespace
        self.url = url
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        # URL query parameters (socket_timeout=…) override these defaults.
        self._client: Any = aioredis.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, decode_responses=False
        )

    def __repr__(self) -> str:
        return f"RedisKV({self._safe_url()!r}, namespace={self.namespace!r})"

    def _safe_url(self) -> str:
        """The URL without a password, for messages."""
        head, sep, tail = self.url.rpartition("@")
        if not sep:
            return self.url
        scheme, _, _ = head.partition("://")
        return f"{scheme}://***@{tail}"

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Translate redis-py failures into StoreError at the seam."""
        try:
            yield
        except self._errors as exc:
            text = str(exc)
            if text.startswith("WRONGTYPE"):
                raise StoreError(f"Redis KV: {text}") from exc
            raise StoreError(
                f"Redis KV at {self._safe_url()}: {text or type(exc).__name__}"
            ) from exc

    async def get(self, key: str) -> bytes | None:
        async with self._guard():
            return await self._client.get(self._k(key))

    async def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        data, ttl = to_bytes(value), check_ttl(ttl)
        async with self._guard():
            await self._client.set(self._k(key), data, px=None if ttl is None else _ms(ttl))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        async with self._guard():
            return int(await self._client.delete(*(self._k(k) for k in keys)))

    async def exists(self, key: str) -> bool:
        async with self._guard():
            return bool(await self._client.exists(self._k(key)))

    async def expire(self, key: str, ttl: float) -> bool:
        async with self._guard():
            return bool(await self._client.pexpire(self._k(key), _ms(float(ttl))))

    async def lpush(self, key: str, *values: Value) -> int:
        if not values:
            return await self.llen(key)
        async with self._guard():
            return int(await self._client.lpush(self._k(key), *(to_bytes(v) for v in values)))

    async def rpush(self, key: str, *values: Value) -> int:
        if not values:
            return await self.llen(key)
        async with self._guard():
            return int(await self._client.rpush(self._k(key), *(to_bytes(v) for v in values)))

    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        async with self._guard():
            return list(await self._client.lrange(self._k(key), int(start), int(stop)))

    async def ltrim(self, key: str, start: int, stop: int) -> None:
        async with self._guard():
            await self._client.ltrim(self._k(key), int(start), int(stop))

    async def llen(self, key: str) -> int:
        async with self._guard():
            return int(await self._client.llen(self._k(key)))

    async def sadd(self, key: str, *members: Value) -> int:
        if not members:
            return 0
        async with self._guard():
            return int(await self._client.sadd(self._k(key), *(to_bytes(m) for m in members)))

    async def srem(self, key: str, *members: Value) -> int:
        if not members:
            return 0
        async with self._guard():
            return int(await self._client.srem(self._k(key), *(to_bytes(m) for m in members)))

    async def smembers(self, key: str) -> builtins.set[bytes]:
        async with self._guard():
            return set(await self._client.smembers(self._k(key)))

    async def _scan(self, prefix: str) -> list[bytes]:
        pattern = _glob_escape(self._k(prefix)) + "*"
        async with self._guard():
            return [k async for k in self._client.scan_iter(match=pattern, count=500)]

    async def keys(self, prefix: str = "") -> list[str]:
        return sorted(self._strip(k.decode()) for k in await self._scan(prefix))

    async def clear(self) -> int:
        """Delete every key under this store's namespace (the whole database if it is empty)."""
        found = await self._scan("")
        removed = 0
        async with self._guard():
            for i in range(0, len(found), 500):
                removed += int(await self._client.unlink(*found[i : i + 500]))
        return removed

    async def _run_batch(self, ops: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=True)
        shape: list[str] = []
        for name, key, *args in ops:
            if name == "delete":
                if not key:
                    shape.append("zero")
                    continue
                pipe.delete(*(self._k(k) for k in key))
            elif name == "set":
                value, ttl = args
                pipe.set(self._k(key), value, px=None if ttl is None else _ms(ttl))
            elif name == "expire":
                pipe.pexpire(self._k(key), _ms(args[0]))
            elif name in ("lpush", "rpush", "sadd", "srem"):
                if not args[0]:  # Redis rejects these commands without values
                    if name in ("lpush", "rpush"):
                        pipe.llen(self._k(key))
                    else:
                        shape.append("zero")
                        continue
                else:
                    getattr(pipe, name)(self._k(key), *args[0])
            else:
                pipe.ltrim(self._k(key), *args)
            shape.append(name)
        async with self._guard():
            try:
                raw = iter(await pipe.execute() if len(pipe) else [])
            finally:
                await pipe.reset()
        return [_normalize(name, None if name == "zero" else next(raw)) for name in shape]

    async def aclose(self) -> None:
        """Close the client and its connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _normalize(name: str, value: Any) -> Any:
    """Batch results shaped like the single calls' results."""
    if name == "zero":
        return 0
    if name in ("set", "ltrim"):
        return None
    if name == "expire":
        return bool(value)
    return int(value)
