"""Limits that keep hostile input from stalling the event loop or exhausting memory.

One place for the numbers and the small checks built on them: how deep a value may nest, how
much of an offending value an error message may quote, text that cannot be encoded (lone
surrogates), and the pacer that makes the engine loop hand the event loop back regularly.
`docs/security.md` lists every limit with its setting and default.
"""

from __future__ import annotations

import re
from time import perf_counter
from typing import Any

from taskengine.errors import DataConversionError

__all__ = [
    "MAX_DEPTH",
    "MAX_QUOTE",
    "YIELD_EVERY_S",
    "LoopPacer",
    "check_depth",
    "check_text",
    "clip_message",
    "first_surrogate",
    "quote_value",
]

#: nesting levels a JSON/YAML value (request body, chain file, input) may have
MAX_DEPTH = 64
#: characters of an offending value an error message may repeat
MAX_QUOTE = 200
#: longest stretch the engine loop runs without giving other requests a turn, in seconds
#: (a /health request needs several turns; at 1 ms a 100 000-step loop slows by about 1 %)
YIELD_EVERY_S = 0.001


class LoopPacer:
    """Says when a CPU-only loop has held the event loop long enough to yield (`await sleep(0)`).

    A chain of handlers that never await I/O (`noop` loops) would otherwise keep the loop busy
    until it ends: no other request is served and no deadline (`asyncio.timeout`) can fire.
    """

    __slots__ = ("_last", "every")

    def __init__(self, every: float = YIELD_EVERY_S) -> None:
        self.every = every
        self._last = perf_counter()

    def due(self) -> bool:
        now = perf_counter()
        if now - self._last < self.every:
            return False
        self._last = now
        return True


def quote_value(value: Any, limit: int = MAX_QUOTE) -> str:
    """`repr` of a value for an error message, cut to about `limit` characters."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"… ({len(value):,} characters)"
    text = repr(value) if not isinstance(value, (dict, list, tuple)) else _short_repr(value, limit)
    if len(text) > limit:
        return text[:limit] + "…"
    return text


def _short_repr(value: Any, limit: int) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= limit else text[:limit] + "…"


_N = str(MAX_QUOTE)
_LONG_QUOTED = re.compile("'([^'\\n]{" + _N + "})[^'\\n]+'|\"([^\"\\n]{" + _N + '})[^"\\n]+"')
_LONG_WORD = re.compile(r"\S{" + str(MAX_QUOTE + 40) + r"}\S+")


def clip_message(text: str) -> str:
    """`text` with every quoted value or unbroken word past `MAX_QUOTE` characters cut short.

    Errors repeat what the caller sent (an unknown handler, a bad id); a 1 MB value must not
    come back in the answer, the log line and the CLI's one-line error.
    """
    if len(text) <= MAX_QUOTE:
        return text
    text = _LONG_QUOTED.sub(_clip_quoted, text)
    return _LONG_WORD.sub(lambda m: m.group(0)[:MAX_QUOTE] + "…", text)


def _clip_quoted(match: re.Match[str]) -> str:
    quote = "'" if match.group(1) is not None else '"'
    kept = match.group(1) if match.group(1) is not None else match.group(2)
    return f"{quote}{kept}…{quote}"


def first_surrogate(text: str) -> int:
    """Index of the first lone surrogate in `text` (cannot be encoded as UTF-8), or -1."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return -1


def check_text(text: str, *, field: str, **context: Any) -> str:
    """`text` unchanged, or a `DataConversionError` naming `field` when it holds a lone surrogate."""
    at = first_surrogate(text)
    if at >= 0:
        raise DataConversionError(
            f"{field} holds a lone surrogate (U+{ord(text[at]):04X}) at index {at}; "
            "send valid Unicode text",
            field=field,
            **context,
        )
    return text


def check_depth(value: Any, *, field: str, limit: int = MAX_DEPTH, **context: Any) -> Any:
    """`value` unchanged, or a `DataConversionError` naming `field` when it nests deeper than `limit`.

    Iterative, so the check itself cannot overflow the stack; it also rejects lone surrogates
    in strings and keys, which would fail later when the value is stored or sent.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, field)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            check_text(item, field=where, **context)
            continue
        if not isinstance(item, (dict, list, tuple)):
            continue
        if depth >= limit:
            raise DataConversionError(
                f"{field} nests deeper than {limit} levels", field=field, **context
            )
        if isinstance(item, dict):
            for key, child in item.items():
                name = str(key)
                if isinstance(key, str):
                    check_text(key, field=f"{where} key", **context)
                stack.append((child, depth + 1, f"{where}.{name[:40]}"))
        else:
            for index, child in enumerate(item):
                stack.append((child, depth + 1, f"{where}[{index}]"))
    return value
