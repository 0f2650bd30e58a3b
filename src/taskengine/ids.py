"""Random ids (runs, requests, leases, activity events): 32 hex digits, a version-4 UUID.

`uuid.uuid4().hex` builds a `UUID` object and makes a system call (`os.urandom`) on every
call; a server request makes several ids. `new_id` takes the same 16 random bytes from a
buffer filled by `os.urandom` 256 ids at a time, sets the version and variant bits as
`uuid4` does, and formats them: the ids look and parse the same
(`uuid.UUID(new_id()).version == 4`). A lock keeps two threads from taking the same bytes,
and a forked child drops the buffer it inherited, so parent and child never share ids.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_id"]

_BATCH = 16 * 256
_lock = threading.Lock()
_pool = b""
_taken = 0


def _random16() -> bytes:
    global _pool, _taken
    with _lock:
        if _taken + 16 > len(_pool):
            _pool, _taken = os.urandom(_BATCH), 0
        start = _taken
        _taken = start + 16
        return _pool[start : start + 16]


def _forget_pool() -> None:
    global _pool, _taken
    _pool, _taken = b"", 0


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_pool)


def new_id() -> str:
    """A fresh random id, formatted as `uuid.uuid4().hex`."""
    raw = bytearray(_random16())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return raw.hex()
