"""`Seconds`: a settings field given as a number of seconds or a Go-style duration ("30s")."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Seconds"]


def _seconds(value: Any) -> Any:
    """Accept seconds as a number or a Go-style duration string ("30s", "2m", "500ms")."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            from taskengine.chain import parse_duration

            return parse_duration(value)
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]
