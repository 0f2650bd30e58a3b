"""Go's `fmt` basics: a verb's flags, width and precision, padding, and string quoting.

Shared by the number and string verbs of `taskengine.templates.gofmt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LOWER", "MAX_WIDTH", "UPPER", "Spec", "go_type_name", "is_print", "pad", "quote"]

#: digits of lower- and upper-case verbs; index 16 is the `x` of a `0x` prefix
LOWER = "0123456789abcdefx"
UPPER = "0123456789ABCDEFX"
#: widths and precisions past this are refused, so a template cannot build huge strings
MAX_WIDTH = 10_000


@dataclass(slots=True)
class Spec:
    """Flags, width and precision of one verb."""

    minus: bool = False
    plus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: int | None = None
    prec: int | None = None


def go_type_name(value: Any) -> str:
    """The Go type a Python value stands for (what `%T` prints)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return type(value).__name__


def pad(text: str, spec: Spec, *, zero_ok: bool = True) -> str:
    """`text` padded to the width (left, or right with `-`; zeros when `0` and `zero_ok`)."""
    if spec.width is None or len(text) >= spec.width:
        return text
    fill = spec.width - len(text)
    if spec.minus:
        return text + " " * fill
    return ("0" if spec.zero and zero_ok else " ") * fill + text


def is_print(ch: str) -> bool:
    """Go's `strconv.IsPrint` (a space is printable, other white space is not)."""
    return ch == " " or (ch.isprintable() and not ch.isspace())


def quote(text: str, *, ascii_only: bool = False) -> str:
    """Go's `strconv.Quote` (or `QuoteToASCII`)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif is_print(ch) and (code < 0x80 or not ascii_only):
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
