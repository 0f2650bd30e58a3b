"""Readers for model replies: numbers, scores, ranges, key=value pairs, transition commands.

Models rarely answer with a bare token, so every reader tolerates quotes, surrounding words and a
trailing period, and raises `ParseError` (showing what came back) when nothing usable is there.
"""

from __future__ import annotations

import re

from taskengine.errors import ParseError

__all__ = [
    "normalize_condition",
    "parse_condition",
    "parse_key_value",
    "parse_number",
    "parse_range",
    "parse_score",
    "parse_transition",
]

# Numbers may use thousands separators ("1,000", "1,000.5"); a bare ".5" is a half.
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_INT = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.0+)?(?![\d.]*\d)")
_FLOAT = re.compile(rf"(?:{_NUM})(?:[eE][-+]?\d+)?")
_RANGE = re.compile(rf"({_NUM})\s*(?:-|–|to|and|\.\.)\s*({_NUM})", re.I)
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_STRIP = " \t\r\n\"'`,;:!?*"


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 120 else text[:119] + "…")


def _unquote(text: str) -> str:
    """Trim quotes, spaces and punctuation; a trailing period goes, a leading one stays (".5")."""
    return text.strip().strip(_STRIP).rstrip(".").strip(_STRIP)


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def parse_number(text: str) -> int:
    """The integer in a reply (`"42"`, `"The answer is 42."`, `"42.0"`, `"1,000"`)."""
    cleaned = _unquote(text)
    if _THOUSANDS.fullmatch(cleaned):
        cleaned = cleaned.replace(",", "")
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        value = float(cleaned)
        if value.is_integer():
            return int(value)
    except ValueError:
        pass
    m = _INT.search(text)
    if m:
        return int(_num(m.group(0)))
    raise ParseError(f"expected an integer, got {_shown(text)}")


def parse_score(text: str) -> float:
    """The floating-point score in a reply (`"7.5"`, `"Score: 7.5/10"`, `".5"`)."""
    cleaned = _unquote(text)
    try:
        return float(cleaned)
    except ValueError:
        pass
    m = _FLOAT.search(text)
    if m:
        return _num(m.group(0))
    raise ParseError(f"expected a number, got {_shown(text)}")


def _fmt(value: str) -> str:
    number = _num(value)
    return str(int(number)) if number.is_integer() else str(number)


def parse_range(text: str) -> str:
    """A range as `"a-b"`; a single number `n` becomes `"n-n"`."""
    m = _RANGE.search(text)
    if m:
        low, high = _fmt(m.group(1)), _fmt(m.group(2))
        if _num(low) > _num(high):
            low, high = high, low
        return f"{low}-{high}"
    m = _FLOAT.search(text)
    if m:
        n = _fmt(m.group(0))
        return f"{n}-{n}"
    raise ParseError(f"expected a range like '5-7' or a number, got {_shown(text)}")


def normalize_condition(text: str) -> str:
    """Lower-case, trimmed, without surrounding quotes or a trailing period."""
    return _unquote(text).strip().lower()


def parse_condition(text: str, valid: dict[str, bool]) -> tuple[str, bool]:
    """Match a reply against `valid_conditions`; returns (the condition key, its bool value)."""
    wanted = normalize_condition(text)
    by_norm = {normalize_condition(k): k for k in valid}
    key = by_norm.get(wanted)
    if key is None:
        # A reply like "Yes, it is." — accept the first word when it is a valid condition.
        first = re.split(r"[\s,;:.!?]+", wanted, maxsplit=1)[0] if wanted else ""
        key = by_norm.get(first)
    if key is None:
        raise ParseError(
            f"reply {_shown(text)} is not one of the valid conditions: {', '.join(valid)}"
        )
    return key, bool(valid[key])


def parse_key_value(text: str) -> dict[str, str]:
    """`"name=John, age=30, city=New York"` (or one pair per line, or `key: value`) → dict."""
    result: dict[str, str] = {}
    parts = [p for line in text.splitlines() for p in _split_pairs(line)]
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            key, _, value = part.partition("=")
        elif ":" in part:
            key, _, value = part.partition(":")
        else:
            raise ParseError(f"expected key=value pairs, got {_shown(part)} in {_shown(text)}")
        key = key.strip().strip("\"'`")
        if not key:
            raise ParseError(f"empty key in {_shown(text)}")
        result[key] = value.strip().strip("\"'`")
    if not result:
        raise ParseError(f"expected key=value pairs, got {_shown(text)}")
    return result


def _split_pairs(line: str) -> list[str]:
    """Split on commas that start a new `key=` pair, so values may contain commas."""
    pieces = re.split(r",\s*(?=[\w\"'`-]+\s*[=:])", line)
    return pieces


def parse_transition(text: str) -> tuple[str, str]:
    """`"/search cats"` → ("search", "cats"); text without a leading `/command` → ("", text)."""
    stripped = text.lstrip()
    m = re.match(r"/([A-Za-z0-9_\-]+)\s*", stripped)
    if not m:
        return "", text
    return m.group(1), stripped[m.end() :]
