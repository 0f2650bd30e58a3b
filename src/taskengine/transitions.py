"""Transition operators and branch evaluation.

Explicit branches are tried in order; the first that matches wins. If none does, the `default`
branch (if any) is taken. Numeric operators read the first number in the value, so `"42"`,
`'"42"'` and `"score: 42."` all compare as 42. `in_range` is inclusive.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from taskengine.errors import NoBranchMatchError, TaskExecutionError

if TYPE_CHECKING:
    from taskengine.chain import TaskTransition

__all__ = [
    "OPERATORS",
    "OperatorTerm",
    "compare",
    "evaluate_transitions",
    "parse_range_bounds",
    "supported_operators",
    "to_operator_term",
]

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_RANGE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*-\s*([-+]?\d+(?:\.\d+)?)\s*$")


def first_number(text: str) -> float | None:
    """The first number in `text`, tolerating quotes and surrounding words."""
    m = _NUMBER.search(text)
    return float(m.group(0)) if m else None


def parse_range_bounds(when: str) -> tuple[float, float] | None:
    """Parse an `in_range` bound like `"3-7"` or `"-5 - 5"`; None when malformed."""
    m = _RANGE.match(when)
    if not m:
        return None
    low, high = float(m.group(1)), float(m.group(2))
    return (low, high) if low <= high else None


def _num_cmp(value: str, when: str, op: Callable[[float, float], bool]) -> bool:
    a = first_number(value)
    b = first_number(when)
    return a is not None and b is not None and op(a, b)


def _in_range(value: str, when: str) -> bool:
    bounds = parse_range_bounds(when)
    a = first_number(value)
    return bounds is not None and a is not None and bounds[0] <= a <= bounds[1]


def _gt(a: float, b: float) -> bool:
    return a > b


def _lt(a: float, b: float) -> bool:
    return a < b


OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "equals": lambda v, w: v == w,  # exact, as in Go
    "contains": lambda v, w: w in v,
    "starts_with": lambda v, w: v.startswith(w),
    "ends_with": lambda v, w: v.endswith(w),
    ">": lambda v, w: _num_cmp(v, w, _gt),
    "gt": lambda v, w: _num_cmp(v, w, _gt),
    "<": lambda v, w: _num_cmp(v, w, _lt),
    "lt": lambda v, w: _num_cmp(v, w, _lt),
    "in_range": _in_range,
    "default": lambda v, w: True,
}


class OperatorTerm(StrEnum):
    """Transition operators (Go: `OperatorTerm`)."""

    EQUALS = "equals"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    GREATER_THAN = ">"
    GT = "gt"
    LESS_THAN = "<"
    LT = "lt"
    IN_RANGE = "in_range"
    DEFAULT = "default"


def to_operator_term(name: str) -> OperatorTerm:
    """Parse an operator name (Go: `ToOperatorTerm`); unknown names raise `TaskExecutionError`."""
    try:
        return OperatorTerm(name)
    except ValueError:
        raise TaskExecutionError(
            f"unknown operator {name!r}; supported: {', '.join(OPERATORS)}", field="operator"
        ) from None


def supported_operators() -> list[str]:
    """Every operator a transition branch may use."""
    return list(OPERATORS)


def compare(operator: str, value: str, when: str) -> bool:
    """True when `value` satisfies `operator` against `when` (an empty operator means equals)."""
    fn = OPERATORS.get(operator or "equals")
    if fn is None:
        raise TaskExecutionError(
            f"unknown operator {operator!r}; supported: {', '.join(OPERATORS)}"
        )
    return fn(value, when)


def evaluate_transitions(
    transition: TaskTransition, value: str, *, task_id: str | None = None
) -> str:
    """The next task id for `value` (`""` or "end" ends the chain)."""
    default: str | None = None
    for branch in transition.branches:
        op = branch.operator or "equals"
        if op == "default":
            if default is None:
                default = branch.goto
            continue
        if compare(op, value, branch.when):
            return branch.goto
    if default is not None:
        return default
    shown = value if len(value) <= 80 else value[:79] + "…"
    raise NoBranchMatchError(
        f"no transition branch matches {shown!r} and there is no default branch",
        task_id=task_id,
        field="transition.branches",
    )
