"""Checking a value against a task's or step's `output_schema`, with compiled validators cached.

Building a jsonschema validator (checking the schema, resolving its draft) costs far more than
using one, and the same few schemas are checked on every step; `validate_json` keeps the
validators of the most recently used schemas, keyed by the schema's canonical JSON text.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

__all__ = ["schema_validator", "validate_json"]

_CACHED_SCHEMAS = 256


def validate_json(instance: Any, schema: dict[str, Any]) -> None:
    """`jsonschema.validate(instance, schema)` with the schema's validator cached.

    Raises `jsonschema.SchemaError` for an invalid schema and the best-matching
    `jsonschema.ValidationError` for an instance that does not match, as `jsonschema.validate`.
    """
    from jsonschema.exceptions import best_match

    error = best_match(schema_validator(schema).iter_errors(instance))
    if error is not None:
        raise error


def schema_validator(schema: dict[str, Any]) -> Any:
    """The compiled (checked) validator of `schema`, shared by every equal schema."""
    try:
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON: build one, uncached
        return _build(schema)
    return _cached(key)


@lru_cache(maxsize=_CACHED_SCHEMAS)
def _cached(schema_text: str) -> Any:
    return _build(json.loads(schema_text))


def _build(schema: dict[str, Any]) -> Any:
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)
