"""Bounds on what one template may build: widths, precisions, size and nesting of the source.

A format string is data a chain author (or, through `.input`, a caller) controls, and a width
such as `%0999999999d` makes Python or Go-style formatting allocate gigabytes. Every width and
precision reachable from a template (`printf`, the `%` operator, the `format` filter,
`str.format`, `ljust`/`rjust`/`center`/`zfill`) is checked against `MAX_WIDTH` *before* the
string is built. The checks only read the format, so they cost time linear in its length.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from taskengine.templates.gofmt_spec import MAX_WIDTH

__all__ = [
    "DEFAULT_MAX_TEMPLATE_CHARS",
    "MAX_NESTING",
    "MAX_SEQUENCE",
    "MAX_WIDTH",
    "check_brace_format",
    "check_join",
    "check_percent_format",
    "check_replace",
    "check_source",
    "check_width_call",
    "max_template_chars",
    "set_max_template_chars",
]

#: characters a template source may have (setting `limits.max_template_chars`)
DEFAULT_MAX_TEMPLATE_CHARS = 100_000
#: brackets a template expression may nest; Jinja's parser recurses once per level
MAX_NESTING = 30
#: characters one `replace` or `join` may produce
MAX_BUILT_CHARS = 1_000_000
#: items a range() may produce in one render, and str/list repetition size
MAX_SEQUENCE = 100_000

_limit = {"chars": DEFAULT_MAX_TEMPLATE_CHARS}

# %[(key)][flags][width][.precision][length]type
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)
_DIGITS = re.compile(r"\d+")
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_OPENERS = {"(": ")", "[": "]", "{": "}"}


def _refusal(message: str) -> Exception:
    """Jinja's `SecurityError`, imported here: plain-text templates never load Jinja."""
    from jinja2.sandbox import SecurityError

    return SecurityError(message)


def max_template_chars() -> int:
    return _limit["chars"]


def set_max_template_chars(chars: int) -> None:
    """Applied from `limits.max_template_chars` when a runtime opens (process-wide)."""
    _limit["chars"] = chars


def _refuse(number: int, what: str) -> None:
    if number > MAX_WIDTH:
        raise _refusal(f"{what} {number} is too large for a template (limit {MAX_WIDTH:,})")


def _star_args(args: Any) -> Iterable[Any]:
    if isinstance(args, tuple):
        return args
    return (args,)


def check_percent_format(fmt: str, args: Any) -> None:
    """Refuse a `%`-format whose widths or precisions (literal or `*`) pass `MAX_WIDTH`."""
    stars = False
    for match in _PERCENT.finditer(fmt):
        for number in match.group(1, 2):
            if number == "*":
                stars = True
            elif number:
                _refuse(int(number), "format width or precision")
    if stars:
        for arg in _star_args(args):
            if type(arg) is int:
                _refuse(arg, "format width or precision")


def _check_spec(spec: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for number in _DIGITS.findall(spec):
        _refuse(int(number), "format width or precision")
    if "{" in spec:  # a nested field: its value comes from the arguments
        check_brace_format(spec, args, kwargs)
        for value in (*args, *kwargs.values()):
            if type(value) is int:
                _refuse(value, "format width or precision")


def check_brace_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a `str.format` string whose format specs pass `MAX_WIDTH`."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself, before building anything
    for _literal, field, spec, _conversion in parsed:
        if field is not None and spec:
            _check_spec(spec, args, kwargs)


def check_width_call(obj: Any, args: tuple[Any, ...]) -> None:
    """Refuse `"x".ljust(10**9)` and the other padding methods of `str` past `MAX_WIDTH`,
    and a `str.replace` whose result would pass `MAX_BUILT_CHARS`."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")
    if name in _WIDTH_METHODS:
        for arg in args[:1]:
            if type(arg) is int:
                _refuse(arg, "width")
    elif name == "replace" and len(args) >= 2:
        check_replace(owner, args[0], args[1])
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        check_join(owner, args[0])


def check_replace(text: Any, old: Any, new: Any) -> None:
    """Refuse a replacement whose result would pass `MAX_BUILT_CHARS` (counted, not built)."""
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    count = text.count(old) if old else len(text) + 1
    size = len(text) + count * (len(new) - len(old))
    if size > MAX_BUILT_CHARS:
        raise _refusal(f"replace would build {size:,} characters (limit {MAX_BUILT_CHARS:,})")


def check_join(separator: str, items: list[Any] | tuple[Any, ...]) -> None:
    """Refuse a join whose result would pass `MAX_BUILT_CHARS` (measured, not built)."""
    size = len(separator) * max(len(items) - 1, 0)
    for item in items:
        size += len(item) if isinstance(item, str) else len(str(item))
        if size > MAX_BUILT_CHARS:
            raise _refusal(f"join would build over {MAX_BUILT_CHARS:,} characters")


def check_source(source: str) -> None:
    """Refuse a template source over the size limit or nesting brackets past `MAX_NESTING`.

    One pass over the text inside `{{ }}` and `{% %}`, so a run of brackets is rejected in
    linear time instead of driving Jinja's recursive parser into `RecursionError`.
    """
    limit = _limit["chars"]
    if len(source) > limit:
        raise _refusal(
            f"template is {len(source):,} characters, over the limit of {limit:,} "
            "(limits.max_template_chars)"
        )
    depth = 0
    inside = False
    i = 0
    end = len(source)
    while i < end:
        pair = source[i : i + 2]
        if not inside and pair in ("{{", "{%"):
            inside, depth, i = True, 0, i + 2
            continue
        if inside and pair in ("}}", "%}") and depth == 0:
            inside, i = False, i + 2
            continue
        if inside:
            ch = source[i]
            if ch in _OPENERS:
                depth += 1
                if depth > MAX_NESTING:
                    raise _refusal(f"template brackets nest deeper than {MAX_NESTING} levels")
            elif ch in ")]}" and depth > 0:
                depth -= 1
        i += 1
