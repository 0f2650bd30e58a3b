"""One conformance suite, three backends: memory, a SQLite file, a real Redis server."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
import uuid

import pytest

from taskengine.errors import StoreError
from taskengine.kv import KVStore, MemoryKV, RedisKV, SQLiteKV, open_kv


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def kv(request, tmp_path):
    """A fresh store per test; the Redis leg lives under a unique namespace it clears after."""
    if request.param == "memory":
        store = await open_kv("memory://")
    elif request.param == "sqlite":
        store = await open_kv(f"sqlite:///{tmp_path}/kv.db")
    else:
        url = request.getfixturevalue("redis_url")
        store = await open_kv(url, namespace=f"te-test-{uuid.uuid4().hex}:")
    try:
        yield store
    finally:
        if request.param == "redis":
            await store.clear()
        await store.aclose()


async def eventually(check, timeout: float = 3.0) -> None:
    """Poll `check()` (async, returns bool) until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


async def test_is_a_kv_store(kv):
    assert isinstance(kv, KVStore)


async def test_strings_round_trip_as_bytes(kv):
    assert await kv.get("missing") is None
    await kv.set("a", "héllo")
    await kv.set("b", b"\x00\xff")
    assert await kv.get("a") == "héllo".encode()
    assert await kv.get("b") == b"\x00\xff"
    assert await kv.exists("a") and not await kv.exists("missing")
    await kv.set("a", "again")
    assert await kv.get("a") == b"again"


async def test_delete_counts_only_existing_keys(kv):
    await kv.set("a", "1")
    await kv.rpush("l", "x")
    await kv.sadd("s", "m")
    assert await kv.delete("a", "l", "s", "nope") == 3
    assert await kv.delete() == 0
    assert not await kv.exists("l")


async def test_json_helpers(kv):
    await kv.set_json("doc", {"n": 1, "items": ["a", "é"]})
    assert await kv.get_json("doc") == {"n": 1, "items": ["a", "é"]}
    assert await kv.get_json("nothing") is None
    await kv.set("bad", "{not json")
    with pytest.raises(StoreError, match="does not hold JSON"):
        await kv.get_json("bad")


async def test_ttl_expires_a_string(kv):
    await kv.set("short", "v", ttl=0.15)
    await kv.set("long", "v", ttl=60)
    assert await kv.get("short") == b"v"

    async def gone() -> bool:
        return await kv.get("short") is None

    await eventually(gone)
    assert not await kv.exists("short")
    assert "short" not in await kv.keys()
    assert await kv.get("long") == b"v"


async def test_expire_on_lists_and_sets(kv):
    await kv.rpush("l", "a", "b")
    await kv.sadd("s", "m")
    assert await kv.expire("l", 0.15)
    assert await kv.expire("s", 0.15)
    assert not await kv.expire("missing", 1)

    async def both_gone() -> bool:
        return await kv.llen("l") == 0 and await kv.smembers("s") == set()

    await eventually(both_gone)
    assert not await kv.exists("l")
    # An expired list starts fresh on the next push.
    assert await kv.rpush("l", "new") == 1
    assert await kv.lrange("l", 0, -1) == [b"new"]


async def test_set_without_ttl_clears_the_old_ttl(kv):
    await kv.set("k", "1", ttl=0.15)
    await kv.set("k", "2")
    await kv.set("marker", "m", ttl=0.15)

    async def marker_gone() -> bool:
        return await kv.get("marker") is None

    await eventually(marker_gone)
    assert await kv.get("k") == b"2"


async def test_expire_with_zero_deletes(kv):
    await kv.set("k", "v")
    assert await kv.expire("k", 0)
    assert not await kv.exists("k")


async def test_bad_ttl_is_refused(kv):
    with pytest.raises(StoreError, match="ttl"):
        await kv.set("k", "v", ttl=0)
    with pytest.raises(StoreError, match="ttl"):
        await kv.set("k", "v", ttl=-1)


async def test_list_push_order_and_ranges(kv):
    assert await kv.rpush("l", "a", "b") == 2
    assert await kv.lpush("l", "z", "y") == 4  # LPUSH z y → y z a b
    assert await kv.lrange("l", 0, -1) == [b"y", b"z", b"a", b"b"]
    assert await kv.lrange("l", 1, 2) == [b"z", b"a"]
    assert await kv.lrange("l", -2, -1) == [b"a", b"b"]
    assert await kv.lrange("l", -100, 100) == [b"y", b"z", b"a", b"b"]
    assert await kv.lrange("l", 3, 1) == []
    assert await kv.lrange("l", 10, 20) == []
    assert await kv.lrange("missing", 0, -1) == []
    assert await kv.llen("l") == 4
    assert await kv.llen("missing") == 0


async def test_ltrim_keeps_a_bounded_window(kv):
    for i in range(30):
        await kv.lpush("log", str(i))
        await kv.ltrim("log", 0, 9)
    assert await kv.llen("log") == 10
    assert await kv.lrange("log", 0, -1) == [str(i).encode() for i in range(29, 19, -1)]
    # Keep the newest at the tail end instead.
    for i in range(25):
        await kv.rpush("tail", str(i))
        await kv.ltrim("tail", -5, -1)
    assert await kv.lrange("tail", 0, -1) == [str(i).encode() for i in range(20, 25)]


async def test_ltrim_to_nothing_removes_the_key(kv):
    await kv.rpush("l", "a", "b")
    await kv.ltrim("l", 5, 10)
    assert not await kv.exists("l")
    assert await kv.llen("l") == 0
    await kv.ltrim("missing", 0, 1)  # no error


async def test_set_operations(kv):
    assert await kv.sadd("s", "a", "b", "a") == 2
    assert await kv.sadd("s", "b", "c") == 1
    assert await kv.smembers("s") == {b"a", b"b", b"c"}
    assert await kv.srem("s", "a", "zzz") == 1
    assert await kv.smembers("s") == {b"b", b"c"}
    assert await kv.srem("s", "b", "c") == 2
    assert not await kv.exists("s")
    assert await kv.smembers("missing") == set()
    assert await kv.srem("missing", "x") == 0
    assert await kv.sadd("s") == 0


async def test_wrong_kind_is_a_store_error(kv):
    await kv.set("str", "v")
    await kv.rpush("list", "v")
    with pytest.raises(StoreError):
        await kv.lpush("str", "x")
    with pytest.raises(StoreError):
        await kv.sadd("list", "x")
    with pytest.raises(StoreError):
        await kv.get("list")
    with pytest.raises(StoreError):
        await kv.lrange("str", 0, -1)
    # SET replaces a value of any kind, as in Redis.
    await kv.set("list", "now a string")
    assert await kv.get("list") == b"now a string"


async def test_keys_by_prefix_and_clear(kv):
    await kv.set("user:1", "a")
    await kv.set("user:2", "b")
    await kv.rpush("user:list", "x")
    await kv.set("other", "c")
    await kv.set("odd%_*?[", "d")
    assert await kv.keys("user:") == ["user:1", "user:2", "user:list"]
    assert await kv.keys("odd%_*?") == ["odd%_*?["]
    assert set(await kv.keys()) == {"user:1", "user:2", "user:list", "other", "odd%_*?["}
    assert await kv.clear() == 5
    assert await kv.keys() == []


async def test_batch_sends_writes_together(kv):
    await kv.set("old", "x")
    async with kv.batch() as b:
        b.lpush("events", "e1", "e2")
        b.ltrim("events", 0, 0)
        b.sadd("ops", "run", "run")
        b.set("last", "e2", ttl=60)
        b.expire("events", 60)
        b.delete("old", "never")
        b.rpush("empty")
        b.srem("ops")
    assert b.results == [2, None, 1, None, True, 1, 0, 0]
    assert await kv.lrange("events", 0, -1) == [b"e2"]
    assert await kv.smembers("ops") == {b"run"}
    assert await kv.get("last") == b"e2"
    assert not await kv.exists("old")
    empty = kv.batch()
    assert await empty.execute() == []


async def test_batch_wrong_kind_raises(kv):
    await kv.set("str", "v")
    with pytest.raises(StoreError):
        async with kv.batch() as b:
            b.lpush("str", "x")


async def test_values_must_be_bytes_or_text(kv):
    with pytest.raises(StoreError, match="bytes or str"):
        await kv.set("k", 12)  # type: ignore[arg-type]


async def test_namespaces_do_not_see_each_other(tmp_path):
    path = tmp_path / "shared.db"
    a = SQLiteKV(path, namespace="a:")
    b = SQLiteKV(path, namespace="b:")
    try:
        await a.set("k", "from a")
        await b.set("k", "from b")
        assert await a.get("k") == b"from a"
        assert await b.keys() == ["k"]
        assert await a.clear() == 1
        assert await b.get("k") == b"from b"
    finally:
        await a.aclose()
        await b.aclose()


async def test_sqlite_is_shared_between_connections(tmp_path):
    path = tmp_path / "kv.db"
    first = await open_kv(f"sqlite:///{path}")
    second = await open_kv(f"sqlite:///{path}")
    try:
        await first.rpush("l", "a")
        await second.rpush("l", "b")
        assert await first.lrange("l", 0, -1) == [b"a", b"b"]
        probe = sqlite3.connect(path)
        try:
            assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            probe.close()
    finally:
        await first.aclose()
        await second.aclose()


async def test_sqlite_refuses_a_corrupted_file(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not a usable taskengine KV database") as info:
        SQLiteKV(path)
    assert str(path) in str(info.value)


async def test_sqlite_refuses_a_foreign_database(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    with pytest.raises(StoreError, match=r"not a taskengine KV store.*customers"):
        await open_kv(f"sqlite:///{path}")


async def test_sqlite_reopens_its_own_file(tmp_path):
    path = tmp_path / "kv.db"
    store = SQLiteKV(path)
    await store.set("persist", "yes")
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.get("persist")
    again = SQLiteKV(path)
    try:
        assert await again.get("persist") == b"yes"
    finally:
        await again.aclose()


async def test_open_kv_picks_the_backend():
    assert isinstance(await open_kv("memory://"), MemoryKV)
    assert (await open_kv("memory://?namespace=x:")).namespace == "x:"
    redis_kv = await open_kv("redis://user:pw@127.0.0.1:1/0?namespace=n:")
    assert isinstance(redis_kv, RedisKV) and redis_kv.namespace == "n:"
    assert "pw" not in repr(redis_kv)
    await redis_kv.aclose()
    with pytest.raises(StoreError, match="unsupported KV URL"):
        await open_kv("ftp://example")
    with pytest.raises(StoreError, match="names no file"):
        await open_kv("sqlite://")


async def test_redis_down_is_a_store_error():
    # Port 1 on loopback refuses connections: the failure surfaces as StoreError, not redis-py's.
    store = await open_kv("redis://127.0.0.1:1/0", namespace="x:")
    try:
        with pytest.raises(StoreError, match="Redis KV"):
            await store.get("k")
    finally:
        await store.aclose()


async def test_missing_redis_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)  # as if redis-py were not installed
    with pytest.raises(StoreError, match=r"pip install 'taskengine\[redis\]'"):
        await open_kv("redis://127.0.0.1:6379/0")
