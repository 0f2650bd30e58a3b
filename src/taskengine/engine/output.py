"""What becomes of a successful step's output: composed with a variable, printed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskengine.compose import compose_values
from taskengine.errors import TaskExecutionError

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine.plan import Step

__all__ = ["compose_output", "print_output"]

print_logger = logging.getLogger("taskengine.print")


def compose_output(
    step: Step,
    value: Any,
    vtype: DataType,
    variables: dict[str, Any],
    types: dict[str, DataType],
) -> tuple[Any, DataType]:
    """Merge the step's output with its `compose.with_var` (Go: compose), kept as `<id>_composed`."""
    spec = step.compose
    assert spec is not None
    try:
        other = variables[spec.with_var]
    except KeyError:
        raise TaskExecutionError(
            f"compose.with_var {spec.with_var!r} is not set yet",
            task_id=step.id,
            field="compose.with_var",
        ) from None
    value, vtype = compose_values(
        value, vtype, other, types[spec.with_var], spec.strategy, task_id=step.id
    )
    variables[f"{step.id}_composed"] = value
    types[f"{step.id}_composed"] = vtype
    return value, vtype


def print_output(print_fn: Callable[[str], None] | None, text: str) -> None:
    """Hand a task's rendered `print` to `print_fn`, else to the `taskengine.print` logger."""
    if print_fn is not None:
        print_fn(text)
    else:
        print_logger.info(text)
