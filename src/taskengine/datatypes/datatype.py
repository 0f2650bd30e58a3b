"""`DataType`: what a value flowing between tasks is, named as on the wire (`"chat_history"`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from taskengine.errors import DataConversionError

__all__ = ["DataType"]


class DataType(StrEnum):
    """The type of a value flowing between tasks, valued by its wire name (`"chat_history"`).

    A `str` subclass, so JSON, YAML and pydantic all serialise it by name as the Go engine's
    `MarshalJSON`/`MarshalYAML` do; `code` is Go's iota number, accepted by `from_string` too.
    """

    ANY = "any"
    STRING = "string"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    VECTOR = "vector"
    SEARCH_RESULTS = "search_results"
    JSON = "json"
    CHAT_HISTORY = "chat_history"
    OPENAI_CHAT = "openai_chat"
    OPENAI_CHAT_RESPONSE = "openai_chat_response"
    NIL = "nil"

    @property
    def type_name(self) -> str:
        """The wire name (`"chat_history"`, `"int"` …)."""
        return self._value_

    @property
    def code(self) -> int:
        """Go's `DataType` number (iota order)."""
        return _CODES[self]

    def __str__(self) -> str:
        return self._value_

    def __int__(self) -> int:
        return _CODES[self]

    @classmethod
    def from_string(cls, name: str | int | DataType) -> DataType:
        """Parse a wire name (or Go's number); unknown names raise `DataConversionError`."""
        if isinstance(name, DataType):
            return name
        if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(_ORDER):
            return _ORDER[name]
        found = _BY_NAME.get(str(name).strip().lower().replace("-", "_"))
        if found is None:
            raise DataConversionError(
                f"unknown data type {name!r}; expected one of: {', '.join(_NAMES.values())}",
                field="inputType",
            )
        return found

    @classmethod
    def names(cls) -> list[str]:
        return list(_NAMES.values())


_ORDER = list(DataType)
_CODES = {member: i for i, member in enumerate(_ORDER)}


def _register_yaml() -> None:
    """YAML dumps a DataType as its name, like Go's `MarshalYAML` (chain loading imports yaml anyway)."""
    import yaml

    def represent(dumper: Any, data: DataType) -> Any:
        return dumper.represent_str(data._value_)

    for dumper in (yaml.SafeDumper, yaml.Dumper):
        dumper.add_representer(DataType, represent)


_register_yaml()
_NAMES = {
    DataType.ANY: "any",
    DataType.STRING: "string",
    DataType.BOOL: "bool",
    DataType.INT: "int",
    DataType.FLOAT: "float",
    DataType.VECTOR: "vector",
    DataType.SEARCH_RESULTS: "search_results",
    DataType.JSON: "json",
    DataType.CHAT_HISTORY: "chat_history",
    DataType.OPENAI_CHAT: "openai_chat",
    DataType.OPENAI_CHAT_RESPONSE: "openai_chat_response",
    DataType.NIL: "nil",
}
_BY_NAME = {v: k for k, v in _NAMES.items()}
_BY_NAME.update(
    {
        "str": DataType.STRING,
        "boolean": DataType.BOOL,
        "integer": DataType.INT,
        "number": DataType.FLOAT,
        "none": DataType.NIL,
        "null": DataType.NIL,
        "chathistory": DataType.CHAT_HISTORY,
        "searchresults": DataType.SEARCH_RESULTS,
    }
)
