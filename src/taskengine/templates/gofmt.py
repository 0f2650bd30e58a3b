"""Go's `fmt` formatting (`Sprintf`, `Sprint`, `Sprintln`, `%v`) for template values.

Go templates written for the Go engine call `printf`; to render them exactly as Go does, the
verbs, flags, widths and precisions follow Go's `fmt` rules, including its error forms
(`%!d(string=x)`, `%!d(MISSING)`, `%!(EXTRA …)`). Python values map to Go types as
`str`→string, `int`→int, `float`→float64, `bool`→bool, `None`→nil, `dict`→map[string]interface {},
`list`→[]interface {}.
"""

from __future__ import annotations

from typing import Any

from taskengine.templates.gofmt_numbers import format_float, format_int
from taskengine.templates.gofmt_spec import (
    LOWER,
    MAX_WIDTH,
    UPPER,
    Spec,
    go_type_name,
    pad,
    quote,
)

__all__ = [
    "MAX_WIDTH",
    "format_value",
    "go_type_name",
    "quote",
    "sprint",
    "sprintf",
    "sprintln",
]


# --- strings ---------------------------------------------------------------------------------


def _can_backquote(text: str) -> bool:
    return all(
        ch != "`" and ch != "\ufeff" and (ch == "\t" or not (ord(ch) < 0x20 or ord(ch) == 0x7F))
        for ch in text
    )


def _hex_bytes(data: bytes, spec: Spec, digits: str) -> str:
    if spec.prec is not None and spec.prec < len(data):
        data = data[: spec.prec]
    if not data:
        return " " * spec.width if spec.width else ""
    prefix = "0" + digits[16] if spec.sharp else ""
    pairs = [digits[b >> 4] + digits[b & 0xF] for b in data]
    body = " ".join(prefix + p for p in pairs) if spec.space else prefix + "".join(pairs)
    return pad(body, spec, zero_ok=False)


def _fmt_string(value: str, verb: str, spec: Spec) -> str | None:
    if verb in "sv":
        text = value if spec.prec is None else value[: spec.prec]
        if verb == "v" and spec.sharp:
            return pad(quote(value), spec)
        return pad(text, spec)
    if verb == "q":
        text = value if spec.prec is None else value[: spec.prec]
        if spec.sharp and _can_backquote(text):
            return pad("`" + text + "`", spec)
        return pad(quote(text, ascii_only=spec.plus), spec)
    if verb in "xX":
        return _hex_bytes(value.encode("utf-8"), spec, LOWER if verb == "x" else UPPER)
    return None


# --- dispatch ------------------------------------------------------------------------------------


def _bad_verb(verb: str, value: Any) -> str:
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type_name(value)}={format_value(value)})"


def _format_arg(value: Any, verb: str, spec: Spec) -> str:
    if verb == "T":
        return pad(go_type_name(value), spec)
    if value is None:
        return pad("<nil>", spec) if verb == "v" else _bad_verb(verb, value)
    if isinstance(value, bool):
        result = pad("true" if value else "false", spec) if verb in "tv" else None
    elif isinstance(value, int):
        result = format_int(value, verb, spec)
    elif isinstance(value, float):
        result = format_float(value, verb, spec)
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
    return _format_arg(value, "v", Spec())


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

    def verb(self, verb: str, spec: Spec) -> str:
        if verb == "%":
            return "%"
        if self.arg_no >= len(self.args):
            return f"%!{verb}(MISSING)"
        self.arg_no += 1
        return _format_arg(self.args[self.arg_no - 1], verb, spec)

    def spec(self) -> Spec:
        """Flags, `[n]` argument indexes, width and precision before a verb."""
        spec = Spec()
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
