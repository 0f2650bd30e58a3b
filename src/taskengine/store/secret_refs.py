"""`${secret:name}` references inside configuration values: finding and replacing them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from taskengine.errors import SecretError

__all__ = ["SECRET_REF", "find_secret_refs", "resolve_secret_refs"]

#: `${secret:name}` inside a config value; `$${` escapes a literal `${`.
SECRET_REF = re.compile(r"\$\$\{|\$\{secret:([^}]*)\}")


def find_secret_refs(value: Any) -> set[str]:
    """Names of every `${secret:name}` inside strings of a nested structure."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, str):
            found.update(m.group(1) for m in SECRET_REF.finditer(v) if m.group(1) is not None)
        elif isinstance(v, Mapping):
            for item in v.values():
                walk(item)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item)

    walk(value)
    return found


def resolve_secret_refs(value: Any, lookup: Mapping[str, str] | Callable[[str], str]) -> Any:
    """Replace `${secret:name}` in every string of a nested structure (other `${…}` untouched)."""
    get = lookup.__getitem__ if isinstance(lookup, Mapping) else lookup

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)  # `$${` stays for the env expander to unescape
        try:
            return get(m.group(1))
        except KeyError as exc:
            raise SecretError(f"secret {m.group(1)!r} is not set") from exc

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return SECRET_REF.sub(sub, v) if "${" in v else v
        if isinstance(v, Mapping):
            return {k: walk(item) for k, item in v.items()}
        if isinstance(v, list | tuple):
            return [walk(item) for item in v]
        return v

    return walk(value)
