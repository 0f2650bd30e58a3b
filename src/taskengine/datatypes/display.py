"""Any task value as JSON-safe data (`to_jsonable`) or as text (`to_display`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

__all__ = ["to_display", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """A JSON-safe rendering of any task value (pydantic models by their wire aliases)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_display(value: Any) -> str:
    """The text form of a value: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
