"""`new_id`: the ids runs, requests, leases and activity events get are version-4 UUIDs."""

from __future__ import annotations

import re
import uuid

from taskengine.ids import new_id


def test_ids_are_uuid4_hex_and_unique():
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:200]:
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == value


def test_threads_never_share_an_id():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: [new_id() for _ in range(2000)], range(8)))
    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every) == 16000


def test_a_forked_child_does_not_reuse_the_parents_pool():
    import multiprocessing

    new_id()  # the parent's pool now holds unused bytes
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(new_id)
    assert child not in {new_id() for _ in range(300)}
