"""The Jinja sandbox templates render in: immutable, and bounded in what one render may build.

Jinja's `ImmutableSandboxedEnvironment` keeps templates away from Python internals; on top of
it, repetition, powers, `range()`, padding widths, `%`/`format`/`str.format` widths, `replace`
and `join` are bounded (`taskengine.templates.bounds`), and the Go functions the translated
templates call (`printf`, `print`, `println`, `.` as the whole data, `range` over maps) are
installed as globals and filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, pass_context, pass_eval_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from taskengine.datatypes import to_display
from taskengine.errors import TemplateError
from taskengine.templates.bounds import (
    MAX_SEQUENCE,
    check_brace_format,
    check_join,
    check_percent_format,
    check_replace,
    check_width_call,
)
from taskengine.templates.gofmt import format_value, sprint, sprintf, sprintln

__all__ = ["MAX_SEQUENCE", "MAX_WIDTH", "SANDBOX", "finalize", "range_budget"]


def finalize(value: Any) -> Any:
    """Text of an output value: Go's `%v` for numbers (`7.0` prints `7`), JSON for structures."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return format_value(value)
    return to_display(value)


#: Bounds that keep one template from exhausting memory or the event loop.
MAX_WIDTH = 10_000  # width arguments of padding filters


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus limits on repetition, powers and range() per render."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str):
                check_percent_format(left, right)
            return left % right
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError(f"exponent {right} is too large for a template")
            return left**right
        for seq, times in ((left, right), (right, left)):
            repeats = isinstance(seq, (str, list, tuple)) and type(times) is int
            if repeats and len(seq) * times > MAX_SEQUENCE:
                raise SecurityError(f"repetition would build {len(seq) * times:,} items")
        return left * right

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_width_call(obj, args)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            check_brace_format(fmt, args, kwargs)
            return wrapped(*args, **kwargs)

        return bounded


def _bounded_range(*args: int) -> range:
    produced = range_budget.get()
    result = range(*args)
    if produced + len(result) > MAX_SEQUENCE:
        raise SecurityError(
            f"range() would produce more than {MAX_SEQUENCE:,} items in one template"
        )
    range_budget.set(produced + len(result))
    return result


def _bounded_width(filter_fn: Any) -> Any:
    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > MAX_WIDTH:
            raise SecurityError(f"width {width} is too large for a template")
        return filter_fn(value, width, *args, **kwargs)

    return bounded


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's `format` filter (printf-style `%`), with widths and precisions bounded."""
    check_percent_format(str(value), kwargs or args)
    return _JINJA_FORMAT(value, *args, **kwargs)


@pass_eval_context
def _bounded_replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
    """Jinja's `replace` filter, refusing a result over `MAX_BUILT_CHARS` before building it."""
    check_replace(str(value), str(old), str(new))
    return _JINJA_REPLACE(eval_ctx, value, old, new, count)


@pass_eval_context
def _bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    """Jinja's `join` filter, refusing a result over `MAX_BUILT_CHARS` before building it."""
    items = list(value)
    check_join(str(d), items if attribute is None else [""] * len(items))
    return _JINJA_JOIN(eval_ctx, items, d, attribute)


range_budget: ContextVar[int] = ContextVar("taskengine_templaterange_budget", default=0)

SANDBOX = _BoundedSandbox(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=finalize,
)
SANDBOX.globals["range"] = _bounded_range
_JINJA_FORMAT = SANDBOX.filters["format"]
_JINJA_REPLACE = SANDBOX.filters["replace"]
_JINJA_JOIN = SANDBOX.filters["join"]


@pass_context
def _go_root(context: Any) -> dict[str, Any]:
    """Go's top-level `.`: the whole variable map (e.g. `{{ index . "my-task" }}`)."""
    return {k: v for k, v in context.get_all().items() if not callable(v)}


def _go_values(value: Any) -> Any:
    """What Go's `range` yields: a map's values in key order, else the items."""
    if isinstance(value, Mapping):
        return [value[k] for k in sorted(value)]
    return value


def _go_pairs(value: Any) -> Any:
    """Go's `range $k, $v :=`: (key, value) in key order for maps, (index, item) otherwise."""
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in sorted(value)]
    return list(enumerate(value))


def _go_printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise TemplateError(f"printf needs a format string first, got {type(fmt).__name__}")
    try:
        return sprintf(fmt, *args)
    except ValueError as exc:
        raise SecurityError(str(exc)) from None


SANDBOX.globals["_go_root"] = _go_root
SANDBOX.globals["_go_printf"] = _go_printf
SANDBOX.globals["_go_print"] = sprint
SANDBOX.globals["_go_println"] = sprintln
SANDBOX.filters["go_values"] = _go_values
SANDBOX.filters["format"] = _bounded_format
SANDBOX.filters["replace"] = _bounded_replace
SANDBOX.filters["join"] = _bounded_join
SANDBOX.filters["go_pairs"] = _go_pairs
for _name in ("center", "indent", "wordwrap", "truncate"):
    SANDBOX.filters[_name] = _bounded_width(SANDBOX.filters[_name])
