"""Go's `fmt` verbs for integers (`%d %b %o %x %c %q %U`) and floats (`%e %f %g %x %b`)."""

from __future__ import annotations

import math
import struct
from decimal import Decimal

from taskengine.templates.gofmt_spec import LOWER, UPPER, Spec, is_print, pad, quote

__all__ = ["format_float", "format_int"]


def format_int(value: int, verb: str, spec: Spec) -> str | None:
    """An int under `verb`, or None when the verb does not apply to integers."""
    if verb in "dv":
        return _integer(value, 10, verb, spec, LOWER)
    if verb == "b":
        return _integer(value, 2, verb, spec, LOWER)
    if verb in "oO":
        return _integer(value, 8, verb, spec, LOWER)
    if verb in "xX":
        return _integer(value, 16, verb, spec, LOWER if verb == "x" else UPPER)
    if verb == "c":
        return pad(_rune(value), spec)
    if verb == "q":
        return pad(_quote_rune(value, spec), spec)
    if verb == "U":
        return pad(_unicode(value, spec), spec, zero_ok=False)
    return None


def _integer(value: int, base: int, verb: str, spec: Spec, digits: str) -> str:
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
    return pad(text, spec, zero_ok=False)


def _rune(code: int) -> str:
    if not (0 <= code <= 0x10FFFF) or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return chr(code)


def _quote_rune(code: int, spec: Spec) -> str:
    ch = _rune(code)
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return "'" + quote(ch, ascii_only=spec.plus)[1:-1] + "'"


def _unicode(code: int, spec: Spec) -> str:
    digits = f"{code:X}" if code >= 0 else "-" + f"{-code:X}"
    min_digits = max(4, spec.prec or 0)
    text = "U+" + digits.rjust(min_digits, "0")
    if spec.sharp and 0 <= code <= 0x10FFFF and is_print(_rune(code)):
        text += " '" + _rune(code) + "'"
    return text


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
    digits = UPPER if upper else LOWER
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


def format_float(value: float, verb: str, spec: Spec) -> str | None:
    """A float64 under `verb`, or None when the verb does not apply to floats."""
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
        return pad(text, spec, zero_ok=False)
    text = _float_text(value, verb, None if verb == "b" else spec.prec)
    if text[0] != "-":
        text = ("+" if spec.plus else " " if spec.space else "") + text
    if spec.zero and not spec.minus and spec.width is not None and len(text) < spec.width:
        sign = text[0] if text[0] in "+- " else ""
        return sign + "0" * (spec.width - len(text)) + text[len(sign) :]
    return pad(text, spec, zero_ok=False)
