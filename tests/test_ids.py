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
