"""How the stores write JSON and page through listings, the same on every backend.

`dump_json` is the one compact encoder every stored value goes through (a value that is
not JSON fails as a StoreError naming what it was); cursors are opaque URL-safe tokens
that `decode_cursor` checks, so a tampered one is an input error, not a database error.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from taskengine.errors import DataConversionError, StoreError
from taskengine.store.records import MAX_PAGE, Page

__all__ = [
    "decode_cursor",
    "dump_json",
    "dump_optional",
    "encode_cursor",
    "page_limit",
    "page_of",
]

T = TypeVar("T")

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# The C encoder behind `_encoder`, built once: `JSONEncoder.encode` builds a new one on every
# call, which is a third of the cost of encoding a step row. Without the markers dict it does
# not look for cycles (a cyclic value ends in RecursionError instead, reported the same way).
# That recursion is C recursion bounded only by the recursion limit: above `_FAST_DEPTH` (a
# program that raised the limit) it could overflow the C stack first, so the checking encoder
# is used instead (CPython 3.11 takes ~100 bytes of C stack a level: 5000 levels, ~0.5 MB).
_FAST_DEPTH = 5000
_c_encode = (
    None
    if json.encoder.c_make_encoder is None  # type: ignore[attr-defined]
    else json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
)


def dump_json(value: Any, *, what: str, run_id: str | None = None) -> str:
    """Compact JSON, as `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`."""
    try:
        if _c_encode is None or isinstance(value, str) or sys.getrecursionlimit() > _FAST_DEPTH:
            return _encoder.encode(value)
        return "".join(_c_encode(value, 0))
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            exc = ValueError("nested too deeply or circular")
        raise StoreError(f"{what} is not JSON-serializable: {exc}", run_id=run_id) from exc


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor holding `parts` (JSON, URL-safe base64 without padding)."""
    raw = _encoder.encode(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The parts of a cursor made by `encode_cursor`; a tampered one is an input error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        ok = isinstance(parts, list) and len(parts) == len(types)
        ok = ok and all(
            isinstance(p, t) and not isinstance(p, bool) for p, t in zip(parts, types, strict=False)
        )
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise DataConversionError(f"invalid pagination cursor {cursor[:40]!r}", field="cursor")
    return parts


def page_limit(limit: int) -> int:
    """The page size to fetch: at least 1, at most `MAX_PAGE`."""
    return max(1, min(int(limit), MAX_PAGE))


def dump_optional(value: Any, *, what: str, run_id: str | None = None) -> str | None:
    """`dump_json(value)`, or None for None (a column the write leaves unset or NULL)."""
    return None if value is None else dump_json(value, what=what, run_id=run_id)


def page_of(
    rows: Sequence[tuple],
    limit: int,
    item: Callable[[tuple], T],
    cursor_parts: Callable[[tuple], tuple[Any, ...]],
) -> Page[T]:
    """One page from `limit + 1` rows fetched: the extra row only says there is another page,
    whose cursor is made from the last row shown (`cursor_parts(row)`)."""
    items = [item(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(*cursor_parts(rows[limit - 1])) if more else None)
