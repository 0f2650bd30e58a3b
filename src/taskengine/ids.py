"""Random ids (runs, requests, leases, activity events): 32 hex digits, a version-4 UUID.

`uuid.uuid4().hex` builds a `UUID` object and checks it on every call; a server request
makes several ids, so `new_id` formats the same 16 random bytes from `os.urandom` directly,
with the version and variant bits set as `uuid4` sets them. The ids look and parse the same
(`uuid.UUID(new_id()).version == 4`).
"""

from __future__ import annotations

import os

__all__ = ["new_id"]


def new_id() -> str:
    """A fresh random id: `uuid.uuid4().hex`, about three times faster."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return raw.hex()
