"""Default factories for pydantic fields: `empty_list` and `empty_dict`.

Pydantic reads the signature of every field's `default_factory` (to see whether it takes the
validated data). For the builtins `list` and `dict` that means parsing their text signatures
with `tokenize` (or failing to find one), about 20 times when `taskengine run` loads the chain
and settings models; a Python function's signature is read directly. Same values, same JSON
Schema (a factory's default is never shown).
"""

from __future__ import annotations

from typing import Any

__all__ = ["empty_dict", "empty_list"]


def empty_list() -> list[Any]:
    """A new empty list."""
    return []


def empty_dict() -> dict[Any, Any]:
    """A new empty dict."""
    return {}
