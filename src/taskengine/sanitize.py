"""Input sanitization: clean prompt text and bound the size of what a run is given.

Prompts lose control characters (a model cannot use them, and terminals, logs and some
tokenizers misbehave on them) and bidirectional-override marks (which hide text from the person
reading a prompt); newlines and tabs stay. Inputs are measured as compact UTF-8 JSON, the form
they are stored and sent in, so one limit means the same thing everywhere.
"""

from __future__ import annotations

import json
import re
from typing import Any

from taskengine.errors import StepValidationError

__all__ = ["DEFAULT_MAX_INPUT_BYTES", "check_size", "json_size", "sanitize_text", "sanitize_value"]

DEFAULT_MAX_INPUT_BYTES = 1_000_000

# C0 controls but \t and \n, DEL, C1 controls, and the bidi embedding/override/isolate marks.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def sanitize_text(text: str) -> str:
    """`text` without control characters (newlines and tabs kept; CR and CRLF become newlines)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def sanitize_value(value: Any) -> Any:
    """A copy of a JSON-like value with every string (keys too) passed through `sanitize_text`."""
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, dict):
        return {sanitize_value(k): sanitize_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize_value(v) for v in value]
    return value


def json_size(value: Any, *, what: str = "input") -> int:
    """Bytes of `value` as compact UTF-8 JSON; a value JSON cannot hold is a validation error."""
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise StepValidationError(f"{what} must be JSON-serializable: {exc}", field=what) from exc
    return len(text.encode("utf-8"))


def check_size(value: Any, limit: int | None, *, what: str = "input", **where: Any) -> int:
    """Raise `StepValidationError` when `value` (text as is, else as JSON) is over `limit` bytes.

    Returns the measured size; `limit` None or 0 means unlimited (the size is still measured).
    """
    size = len(value.encode("utf-8")) if isinstance(value, str) else json_size(value, what=what)
    if limit and size > limit:
        raise StepValidationError(
            f"{what} is {size:,} bytes, over the limit of {limit:,} bytes", field=what, **where
        )
    return size
