"""Typed variable edits from the inspector's resume form: `var:NAME` fields, parsed by the variable's type."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_value", "parse_variables"]

_BOOLS = {"true": True, "false": False}


def parse_value(text: str, type_name: str) -> Any:
    """`text` as a value of `type_name`; ValueError says what was expected."""
    kind = type_name.lower()
    if kind in ("string", "str"):
        return text
    if kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {text[:40]!r}") from None
    if kind == "float":
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {text[:40]!r}") from None
    if kind == "bool":
        try:
            return _BOOLS[text.strip().lower()]
        except KeyError:
            raise ValueError(f"expected true or false, got {text[:40]!r}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected JSON ({exc.msg} at column {exc.colno})") from None


def shown(value: Any, type_name: str) -> str:
    """How a variable appears in its form field (text as is, everything else as JSON)."""
    if type_name.lower() in ("string", "str") and isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def parse_variables(
    fields: dict[str, str], current: dict[str, Any], types: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The variables a person changed, and an error per field that does not parse."""
    changed: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, text in fields.items():
        if not key.startswith("var:"):
            continue
        name = key[4:]
        if name not in current:
            errors[name] = "no such variable in this run"
            continue
        type_name = types.get(name, "any")
        if text == shown(current[name], type_name):
            continue
        try:
            changed[name] = parse_value(text, type_name)
        except ValueError as exc:
            errors[name] = f"{type_name}: {exc}"
    return changed, errors
