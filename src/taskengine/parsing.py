"""Readers for model replies: numbers, scores, ranges, key=value pairs, transition commands.

Models rarely answer with a bare token, so every reader tolerates quotes, surrounding words and a
trailing period, and raises `ParseError` (showing what came back) when nothing usable is there.
"""

from __future__ import annotations

import re
from typing import Any

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


_GO_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def parse_range(text: str) -> str:
    """A range as `"a-b"`, read as the Go engine reads it; a single number `n` becomes `"n-n"`.

    Spaces and quotes are removed (and, as a tolerance, a trailing period). A reply with a `-`
    must be exactly two numbers around one dash (`1-2-3`, `5-`, `5-7-` are errors) and is
    returned as written. Without a dash, a reply that is not a bare number may still name a
    range in words (`"10 to 20"`, `"between 3 and 5"`), which the Go engine would reject.
    """
    clean = re.sub(r"[\s\"']", "", text).rstrip(".")
    if "-" in clean:
        parts = clean.split("-")
        if len(parts) != 2:
            raise ParseError(f"invalid range format: {_shown(text)} (expected 'a-b')")
        for part in parts:
            if not _GO_NUMBER.fullmatch(part):
                raise ParseError(f"invalid range {_shown(text)}: {part!r} is not a number")
        return f"{parts[0]}-{parts[1]}"
    if _GO_NUMBER.fullmatch(clean):
        return f"{clean}-{clean}"
    m = _RANGE.search(text)
    if m:
        low, high = _plain(m.group(1)), _plain(m.group(2))
        return f"{low}-{high}"
    m = _FLOAT.search(text)
    if m:
        n = _plain(m.group(0))
        return f"{n}-{n}"
    raise ParseError(f"expected a range like '5-7' or a number, got {_shown(text)}")


def _plain(value: str) -> str:
    number = _num(value)
    return str(int(number)) if number.is_integer() else str(number)


def normalize_condition(text: str) -> str:
    """Lower-case, trimmed, without surrounding quotes or a trailing period."""
    return _unquote(text).strip().lower()


def parse_condition(text: str, valid: dict[str, bool]) -> tuple[str, bool]:
    """Match a reply against `valid_conditions`; returns (the condition key, its bool value).

    A reply equal to a key takes that key, as in Go; only otherwise are case, quotes, spaces,
    a trailing period or trailing words (`"Yes, it is."`) tolerated.
    """
    if text in valid:
        return text, bool(valid[text])
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


def parse_key_value(text: str) -> dict[str, Any]:
    """Key/value pairs as the Go engine reads them, with typed values.

    One delimiter for the whole text: `;` if there is one, else a newline, else `,`. Each pair is
    `k=v` or else `k: v` (a pair with neither is an error); matching quotes around the value
    go; integral numbers become int, other numbers float, `true`/`false` bool, the rest strings.
    """
    result: dict[str, Any] = {}
    if not text:
        return result
    delimiter = ";" if ";" in text else "\n" if "\n" in text else ","
    for pair in text.split(delimiter):
        pair = pair.strip()
        if not pair:
            continue
        sep = "=" if "=" in pair else ":" if ":" in pair else None
        if sep is None:
            raise ParseError(f"invalid key-value pair {_shown(pair)} in {_shown(text)}")
        key, _, value = pair.partition(sep)
        result[key.strip()] = _typed(value.strip())
    return result


def _typed(value: str) -> Any:
    """Go's typing of a parsed value: number, bool or string (matching quotes removed)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if _GO_NUMBER.fullmatch(value):
        number = float(value)
        if number.is_integer() and abs(number) < 2**63:
            return int(number)
        return number
    if value in ("true", "false"):
        return value == "true"
    return value


def parse_transition(text: str) -> str:
    """The transition command of a reply, as the Go engine reads it.

    `"/search cats"` → `"search"`; text that does not start with `/` → `"pass"`; empty text →
    `""`; a lone `/` is an error.
    """
    if text == "":
        return ""
    trimmed = text.strip()
    if not trimmed.startswith("/"):
        return "pass"
    command = trimmed.split(" ", 1)[0][1:]
    if not command:
        raise ParseError(f"empty transition command in {_shown(text)}")
    return command
