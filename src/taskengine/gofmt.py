"""Go's `fmt` formatting (`Sprintf`, `Sprint`, `Sprintln`, `%v`) for template values.

Go templates written for the Go engine call `printf`; to render them exactly as Go does, the
verbs, flags, widths and precisions follow Go's `fmt` rules, including its error forms
(`%!d(string=x)`, `%!d(MISSING)`, `%!(EXTRA …)`). Python values map to Go types as
`str`→string, `int`→int, `float`→float64, `bool`→bool, `None`→nil, `dict`→map[string]interface {},
`list`→[]interface {}.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["format_value", "go_type_name", "quote", "sprint", "sprintf", "sprintln"]

_LOWER = "0123456789abcdefx"
_UPPER = "0123456789ABCDEFX"
#: widths and precisions past this are refused, so a template cannot build huge strings
MAX_WIDTH = 10_000


@dataclass(slots=True)
class _Spec:
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


# --- padding -------------------------------------------------------------------------------------


def _pad(text: str, spec: _Spec, *, zero_ok: bool = True) -> str:
    if spec.width is None or len(text) >= spec.width:
        return text
    fill = spec.width - len(text)
    if spec.minus:
        return text + " " * fill
    return ("0" if spec.zero and zero_ok else " ") * fill + text


# --- strings -------------------------------------------------------------------------------------


def _is_print(ch: str) -> bool:
    return ch == " " or (ch.isprintable() and not ch.isspace())


def quote(text: str, *, ascii_only: bool = False) -> str:
    """Go's `strconv.Quote` (or `QuoteToASCII`)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif _is_print(ch) and (code < 0x80 or not ascii_only):
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


def _can_backquote(text: str) -> bool:
    return all(
        ch != "`" and ch != "\ufeff" and (ch == "\t" or not (ord(ch) < 0x20 or ord(ch) == 0x7F))
        for ch in text
    )


def _hex_bytes(data: bytes, spec: _Spec, digits: str) -> str:
    if spec.prec is not None and spec.prec < len(data):
        data = data[: spec.prec]
    if not data:
        return " " * spec.width if spec.width else ""
    prefix = "0" + digits[16] if spec.sharp else ""
    pairs = [digits[b >> 4] + digits[b & 0xF] for b in data]
    body = " ".join(prefix + p for p in pairs) if spec.space else prefix + "".join(pairs)
    return _pad(body, spec, zero_ok=False)


def _fmt_string(value: str, verb: str, spec: _Spec) -> str | None:
    if verb in "sv":
        text = value if spec.prec is None else value[: spec.prec]
        if verb == "v" and spec.sharp:
            return _pad(quote(value), spec)
        return _pad(text, spec)
    if verb == "q":
        text = value if spec.prec is None else value[: spec.prec]
        if spec.sharp and _can_backquote(text):
            return _pad("`" + text + "`", spec)
        return _pad(quote(text, ascii_only=spec.plus), spec)
    if verb in "xX":
        return _hex_bytes(value.encode("utf-8"), spec, _LOWER if verb == "x" else _UPPER)
    return None


# --- integers ------------------------------------------------------------------------------------


def _fmt_int(value: int, verb: str, spec: _Spec) -> str | None:
    if verb in "dv":
        return _integer(value, 10, verb, spec, _LOWER)
    if verb == "b":
        return _integer(value, 2, verb, spec, _LOWER)
    if verb in "oO":
        return _integer(value, 8, verb, spec, _LOWER)
    if verb in "xX":
        return _integer(value, 16, verb, spec, _LOWER if verb == "x" else _UPPER)
    if verb == "c":
        return _pad(_rune(value), spec)
    if verb == "q":
        return _pad(_quote_rune(value, spec), spec)
    if verb == "U":
        return _pad(_unicode(value, spec), spec, zero_ok=False)
    return None


def _integer(value: int, base: int, verb: str, spec: _Spec, digits: str) -> str:
    negative = value < 0
    magnitude = -value if negative else value
    zero_pad = spec.zero and not spec.minus and spec.width is not None and spec.prec is None
    if spec.prec is not None:
        if spec.prec == 0 and magnitude == 0:
            return " " * (spec.width or 0)
        min_digits = spec.prec
    elif zero_pad:
        min_digits = spec.width - (1 if (negative or spec.plus or spec.space) else 0)  # type: ignore[operator]
    else:
        min_digits = 0
    text = ""
    while magnitude:
        magnitude, rem = divmod(magnitude, base)
        text = digits[rem] + text
    text = text or "0"
    text = "0" * max(0, min_digits - len(text)) + text
    if spec.sharp:
        if base == 2:
            text = "0b" + text
        elif base == 8 and not text.startswith("0"):
            text = "0" + text
        elif base == 16:
            text = "0" + digits[16] + text
    if verb == "O":
        text = "0o" + text
    if negative:
        text = "-" + text
    elif spec.plus:
        text = "+" + text
    elif spec.space:
        text = " " + text
    return _pad(text, spec, zero_ok=False)


def _rune(code: int) -> str:
    if not (0 <= code <= 0x10FFFF) or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return chr(code)


def _quote_rune(code: int, spec: _Spec) -> str:
    ch = _rune(code)
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return "'" + quote(ch, ascii_only=spec.plus)[1:-1] + "'"


def _unicode(code: int, spec: _Spec) -> str:
    digits = f"{code:X}" if code >= 0 else "-" + f"{-code:X}"
    min_digits = max(4, spec.prec or 0)
    text = "U+" + digits.rjust(min_digits, "0")
    if spec.sharp and 0 <= code <= 0x10FFFF and _is_print(_rune(code)):
        text += " '" + _rune(code) + "'"
    return text


# --- floats --------------------------------------------------------------------------------------


def _shortest(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of |value| and the decimal point position (Go's decimal)."""
    if value == 0:
        return "", 0
    _sign, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    point = len(digit_tuple) + int(exponent)
    return digits or "0", point


def _shortest_g(value: float, upper: bool) -> str:
    digits, point = _shortest(value)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if not digits:
        return sign + "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go decides %e over %f with precision 6 for the shortest digits
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = "E" if upper else "e"
        return f"{sign}{mantissa}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return sign + "0." + "0" * (-point) + digits
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return sign + digits[:point] + "." + digits[point:]


def _float_bits(value: float) -> tuple[bool, int, int]:
    """(negative, mantissa with the implicit bit, binary exponent) as Go's `%b` sees them."""
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    negative = bool(bits >> 63)
    exp = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if exp == 0:
        exp = 1
    else:
        mant |= 1 << 52
    return negative, mant, exp - 1023 - 52


def _float_b(value: float) -> str:
    negative, mant, exp = _float_bits(value)
    return f"{'-' if negative else ''}{mant}p{'+' if exp >= 0 else '-'}{abs(exp)}"


def _float_x(value: float, prec: int | None, upper: bool) -> str:
    negative, mant, exp = _float_bits(value)
    exp += 52
    if mant == 0:
        exp = 0
    mask = (1 << 64) - 1
    mant = (mant << 8) & mask  # leading 1 at bit 60
    while mant and not mant & (1 << 60):
        mant = (mant << 1) & mask
        exp -= 1
    if prec is not None and 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant = (mant << (60 - shift)) & mask
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    digits = _UPPER if upper else _LOWER
    out = ("-" if negative else "") + "0" + ("X" if upper else "x") + str((mant >> 60) & 1)
    mant = (mant << 4) & mask
    if prec is None and mant:
        out += "."
        while mant:
            out += digits[(mant >> 60) & 15]
            mant = (mant << 4) & mask
    elif prec:
        out += "."
        for _ in range(prec):
            out += digits[(mant >> 60) & 15]
            mant = (mant << 4) & mask
    out += ("P" if upper else "p") + ("-" if exp < 0 else "+")
    width = 2 if abs(exp) < 100 else 3 if abs(exp) < 1000 else 4
    return out + str(abs(exp)).rjust(width, "0")


def _float_text(value: float, verb: str, prec: int | None) -> str:
    if verb in "eE":
        return f"{value:.{6 if prec is None else prec}{verb}}"
    if verb in "fF":
        return f"{value:.{6 if prec is None else prec}f}"
    if verb in "gG":
        if prec is None:
            return _shortest_g(value, verb == "G")
        return f"{value:.{prec}{'g' if verb == 'g' else 'G'}}"
    if verb in "xX":
        return _float_x(value, prec, verb == "X")
    return _float_b(value)  # "b"


def _fmt_float(value: float, verb: str, spec: _Spec) -> str | None:
    if verb == "v":
        verb = "g"
    if verb not in "eEfFgGxXb":
        return None
    if math.isnan(value) or math.isinf(value):
        text = "NaN" if math.isnan(value) else ("-Inf" if value < 0 else "+Inf")
        if text == "+Inf" and spec.space and not spec.plus:
            text = " Inf"  # Go prints +Inf with its sign unless the space flag asks for a blank
        elif text == "NaN" and (spec.plus or spec.space):
            text = ("+" if spec.plus else " ") + text
        return _pad(text, spec, zero_ok=False)
    text = _float_text(value, verb, None if verb == "b" else spec.prec)
    if text[0] != "-":
        text = ("+" if spec.plus else " " if spec.space else "") + text
    if spec.zero and not spec.minus and spec.width is not None and len(text) < spec.width:
        sign = text[0] if text[0] in "+- " else ""
        return sign + "0" * (spec.width - len(text)) + text[len(sign) :]
    return _pad(text, spec, zero_ok=False)


# --- dispatch ------------------------------------------------------------------------------------


def _bad_verb(verb: str, value: Any) -> str:
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type_name(value)}={format_value(value)})"


def _format_arg(value: Any, verb: str, spec: _Spec) -> str:
    if verb == "T":
        return _pad(go_type_name(value), spec)
    if value is None:
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(verb, value)
    if isinstance(value, bool):
        result = _pad("true" if value else "false", spec) if verb in "tv" else None
    elif isinstance(value, int):
        result = _fmt_int(value, verb, spec)
    elif isinstance(value, float):
        result = _fmt_float(value, verb, spec)
    elif isinstance(value, str):
        result = _fmt_string(value, verb, spec)
    elif isinstance(value, dict):
        items = " ".join(
            f"{_format_arg(k, verb, spec)}:{_format_arg(value[k], verb, spec)}"
            for k in sorted(value, key=str)
        )
        return "map[" + items + "]"
    elif isinstance(value, (list, tuple)):
        return "[" + " ".join(_format_arg(v, verb, spec) for v in value) + "]"
    else:
        from taskengine.datatypes import to_display

        result = _fmt_string(to_display(value), verb, spec)
    return result if result is not None else _bad_verb(verb, value)


def format_value(value: Any) -> str:
    """Go's `%v` of a value."""
    return _format_arg(value, "v", _Spec())


def _checked_size(number: int) -> int:
    if abs(number) > MAX_WIDTH:
        raise ValueError(f"printf width or precision {number} is too large")
    return number


_FLAGS = "+-# 0"


class _Printer:
    """One `Sprintf` call: walks the format, reading each verb's flags, width and precision."""

    def __init__(self, fmt: str, args: tuple[Any, ...]) -> None:
        self.fmt = fmt
        self.args = args
        self.pos = 0
        self.arg_no = 0
        self.reordered = False
        self.out: list[str] = []

    def run(self) -> str:
        fmt, end = self.fmt, len(self.fmt)
        while self.pos < end:
            pct = fmt.find("%", self.pos)
            if pct < 0:
                self.out.append(fmt[self.pos :])
                break
            self.out.append(fmt[self.pos : pct])
            self.pos = pct + 1
            spec = self.spec()
            if self.pos >= end:
                self.out.append("%!(NOVERB)")
                break
            verb = fmt[self.pos]
            self.pos += 1
            self.out.append(self.verb(verb, spec))
        if not self.reordered and self.arg_no < len(self.args):
            extra = ", ".join(
                "<nil>" if a is None else f"{go_type_name(a)}={format_value(a)}"
                for a in self.args[self.arg_no :]
            )
            self.out.append(f"%!(EXTRA {extra})")
        return "".join(self.out)

    def verb(self, verb: str, spec: _Spec) -> str:
        if verb == "%":
            return "%"
        if self.arg_no >= len(self.args):
            return f"%!{verb}(MISSING)"
        self.arg_no += 1
        return _format_arg(self.args[self.arg_no - 1], verb, spec)

    def spec(self) -> _Spec:
        """Flags, `[n]` argument indexes, width and precision before a verb."""
        spec = _Spec()
        fmt = self.fmt
        while self.pos < len(fmt) and fmt[self.pos] in _FLAGS:
            flag = fmt[self.pos]
            if flag == "-":
                spec.minus, spec.zero = True, False
            elif flag == "0":
                spec.zero = not spec.minus  # zero padding only to the left
            else:
                setattr(spec, {"+": "plus", "#": "sharp", " ": "space"}[flag], True)
            self.pos += 1
        self.arg_index()
        width = self.number("%!(BADWIDTH)")
        if width is not None and width < 0:  # a negative * width means left-justify
            width, spec.minus, spec.zero = -width, True, False
        spec.width = width
        if self.pos < len(fmt) and fmt[self.pos] == ".":
            self.pos += 1
            self.arg_index()
            prec = self.number("%!(BADPREC)")
            spec.prec = None if prec is not None and prec < 0 else (prec or 0)
        self.arg_index()
        return spec

    def number(self, bad: str) -> int | None:
        """A width or precision: digits, or `*` taking the next argument (an int)."""
        fmt, start = self.fmt, self.pos
        if start < len(fmt) and fmt[start] == "*":
            self.pos += 1
            if self.arg_no >= len(self.args):
                self.out.append(bad)
                return None
            value = self.args[self.arg_no]
            self.arg_no += 1
            if isinstance(value, bool) or not isinstance(value, int):
                self.out.append(bad)
                return None
            return _checked_size(value)
        while self.pos < len(fmt) and fmt[self.pos].isdigit():
            self.pos += 1
        return _checked_size(int(fmt[start : self.pos])) if self.pos > start else None

    def arg_index(self) -> None:
        """An explicit `[n]` argument index (1-based), if one starts here."""
        fmt = self.fmt
        if self.pos >= len(fmt) or fmt[self.pos] != "[":
            return
        close = fmt.find("]", self.pos)
        if close < 0 or not fmt[self.pos + 1 : close].isdigit():
            return
        index = int(fmt[self.pos + 1 : close]) - 1
        self.arg_no = index if 0 <= index < len(self.args) else len(self.args)
        self.reordered = True
        self.pos = close + 1


def sprintf(fmt: str, *args: Any) -> str:
    """Go's `fmt.Sprintf` (raises ValueError for a width or precision over `MAX_WIDTH`)."""
    return _Printer(fmt, args).run()


def sprint(*args: Any) -> str:
    """Go's `fmt.Sprint`: a space between operands when neither is a string."""
    out: list[str] = []
    for n, arg in enumerate(args):
        if n > 0 and not isinstance(arg, str) and not isinstance(args[n - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


def sprintln(*args: Any) -> str:
    """Go's `fmt.Sprintln`: operands separated by spaces, then a newline."""
    return " ".join(format_value(a) for a in args) + "\n"
