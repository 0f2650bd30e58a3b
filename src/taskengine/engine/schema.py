"""Checking a step's output against its `output_schema` (a JSON Schema)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.datatypes import to_jsonable
from taskengine.errors import StepValidationError

if TYPE_CHECKING:
    from taskengine.engine.plan import Step

__all__ = ["validate_output"]


def validate_output(step: Step, output: Any) -> None:
    """Raise `StepValidationError` when `output` does not match the output_schema of `step`."""
    import jsonschema

    from taskengine.handlers.output_schema import validate_json

    try:
        validate_json(to_jsonable(output), step.output_schema)  # type: ignore[arg-type]
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise StepValidationError(
            f"output does not match output_schema at {where}: {exc.message}",
            task_id=step.id,
            field="output_schema",
        ) from None
    except jsonschema.SchemaError as exc:
        raise StepValidationError(
            f"output_schema is not a valid JSON Schema: {exc.message}",
            task_id=step.id,
            field="output_schema",
        ) from None
