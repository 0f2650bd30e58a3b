"""Durations: the one Go-style parser ("1m30s", "250ms") and the field types built on it.

- `Duration` is every duration field of a chain (a task's `timeout`, `retry_policy.base` and
  `.max`): the text as written, so a chain dumps back exactly as it was loaded, with its length
  in `seconds` (parsed once). A bad text loads and is reported by lint with the other problems.
- `Seconds` is a settings field given as a number of seconds or a Go-style duration; it holds
  the float.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["Duration", "Seconds", "parse_duration", "to_seconds"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Parse a Go-style duration ("10s", "1m30s", "250ms", "1.5h") into seconds.

    Raises ValueError with a readable reason; callers wrap it in a definition error.
    """
    if type(text) is Duration:
        return text.seconds
    return _parse(text)


def _parse(text: str) -> float:
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    if s == "0":
        return 0.0
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r} (use e.g. '30s', '2m', '1h30m', '500ms')")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return sign * total


class Duration(str):
    """A Go-style duration as written in a chain ("" when unset), with its length in seconds.

    A `str`, so it compares, serialises and shows as the text; `seconds` parses it on first use
    (raising ValueError for a text lint reports as invalid).
    """

    _seconds: float

    @property
    def seconds(self) -> float:
        """The duration in seconds (ValueError when the text is not a duration)."""
        try:
            return self._seconds
        except AttributeError:
            self._seconds = _parse(self)
            return self._seconds

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )


def _register_yaml() -> None:
    """YAML dumps a Duration as its text (PyYAML's safe dumper knows only exact `str`)."""
    import yaml

    def represent(dumper: Any, data: Duration) -> Any:
        return dumper.represent_str(str(data))

    for dumper in (yaml.SafeDumper, yaml.Dumper):
        dumper.add_representer(Duration, represent)


_register_yaml()


def to_seconds(value: Any) -> Any:
    """Seconds from a number or a numeric/Go-style duration string ("30", "30s", "500ms")."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return parse_duration(value)
    return value


Seconds = Annotated[float, BeforeValidator(to_seconds)]
