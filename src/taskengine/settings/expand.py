"""`${VAR}`, `${VAR:-default}` and `${secret:name}` expansion in every string of a settings tree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["Expander"]

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Expander:
    """Expands `${VAR}`, `${VAR:-default}` and `${secret:name}` in every string of a tree."""

    def __init__(
        self,
        environ: Mapping[str, str],
        secrets: Mapping[str, str],
        failures: Mapping[str, str],
        resolve: bool,
    ):
        self.environ, self.secrets, self.failures, self.resolve = (
            environ,
            secrets,
            failures,
            resolve,
        )
        self.secret_paths: set[tuple[str, ...]] = set()
        self.problems: list[tuple[tuple[Any, ...], str]] = []

    def expand(self, value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            return _REF.sub(lambda m: self._one(m, path), value) if "${" in value else value
        if isinstance(value, dict):
            return {k: self.expand(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def _one(self, match: re.Match[str], path: tuple[Any, ...]) -> str:
        inner = match.group(1)
        if inner is None:
            return "${"  # `$${` escapes a literal `${`
        if inner.startswith("secret:"):
            name = inner[len("secret:") :].strip()
            self.secret_paths.add(tuple(str(p) for p in path))
            if not self.resolve:
                return match.group(0)
            if name in self.secrets:
                return self.secrets[name]
            self.problems.append((path, self.failures.get(name) or f"secret {name!r} is not set"))
            return ""
        var, sep, default = inner.partition(":-")
        if not _VAR.match(var):
            self.problems.append(
                (
                    path,
                    f"invalid reference '${{{inner}}}' (use ${{VAR}}, ${{VAR:-default}} or ${{secret:name}})",
                )
            )
            return match.group(0)
        value = self.environ.get(var)
        if value is None or (sep and value == ""):
            if sep:
                return default
            self.problems.append(
                (path, f"environment variable {var} is not set (referenced as ${{{var}}})")
            )
            return ""
        return value
