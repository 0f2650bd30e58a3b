"""`convert_to_type`: loosely typed input (JSON, strings from a CLI) as a `DataType`'s value.

The Go engine's `ConvertToType` rules: Go's `ParseBool`, int64 range, `%v` of floats for
strings, a bare prompt as a one-message chat history.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from taskengine.datatypes.datatype import DataType
from taskengine.datatypes.display import to_display
from taskengine.datatypes.messages import ChatHistory, Message, SearchResult
from taskengine.datatypes.openai import OpenAIChatRequest, OpenAIChatResponse
from taskengine.errors import DataConversionError

__all__ = ["convert_to_type"]


def _fail(value: Any, data_type: DataType, why: str = "") -> DataConversionError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:79] + "…"
    extra = f": {why}" if why else ""
    return DataConversionError(f"cannot convert {shown} to {data_type.type_name}{extra}")


def _load_json(value: Any, data_type: DataType) -> Any:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except RecursionError:
            raise _fail(value, data_type, "the JSON nests too deeply") from None
        except json.JSONDecodeError as exc:
            raise _fail(value, data_type, f"not valid JSON ({exc.msg})") from exc
    return value


def _model(value: Any, cls: type[BaseModel], data_type: DataType) -> Any:
    if isinstance(value, cls):
        return value
    raw = _load_json(value, data_type)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise _fail(value, data_type, f"{loc}: {first['msg']}" if loc else first["msg"]) from exc


_GO_INT = re.compile(r"[+-]?\d+")
_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+")
#: what Go's `strconv.ParseBool` accepts
_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}
_INT64 = 2**63


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_string(value: Any) -> str:
    """Go's `fmt.Sprintf("%v", v)` for scalars; structures as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return value.decode()
    if isinstance(value, float):
        from taskengine.templates.gofmt import format_value

        return format_value(value)
    return to_display(value)


def _to_bool(value: Any, data_type: DataType) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _GO_BOOLS:
            return _GO_BOOLS[value]
        raise _fail(
            value, data_type, "Go's ParseBool accepts 1 t T TRUE true True 0 f F FALSE false False"
        )
    if _is_number(value):
        return value != 0
    raise _fail(value, data_type)


def _to_int(value: Any, data_type: DataType) -> int:
    if isinstance(value, bool):
        raise _fail(value, data_type)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(value, data_type, "not a finite number")
        return int(value)  # Go's int(f): truncates toward zero
    if isinstance(value, str) and _GO_INT.fullmatch(value):
        number = int(value)
        if -_INT64 <= number < _INT64:
            return number
        raise _fail(value, data_type, "out of range")
    raise _fail(value, data_type)


def _to_float(value: Any, data_type: DataType) -> float:
    if _is_number(value) or (isinstance(value, str) and _GO_FLOAT.fullmatch(value)):
        number = float(value)
    elif isinstance(value, str) and _GO_HEX_FLOAT.fullmatch(value):
        number = float.fromhex(value)
    elif isinstance(value, str) and value.lstrip("+-").lower() in ("inf", "infinity", "nan"):
        number = math.nan
    else:
        raise _fail(value, data_type)
    if not math.isfinite(number):  # NaN and infinities are not JSON, and never a useful input
        raise _fail(value, data_type, "not a finite number")
    return number


def _to_json(value: Any, data_type: DataType) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    if isinstance(value, str):
        if value.startswith(("{", "[")):
            try:
                return json.loads(value)
            except RecursionError:
                raise _fail(value, data_type, "the JSON nests too deeply") from None
            except json.JSONDecodeError:
                pass
        return value  # Go keeps a string that is not a JSON document as it is
    return value


def convert_to_type(value: Any, data_type: DataType | str) -> Any:
    """Convert `value` to `data_type` by the Go engine's `ConvertToType` rules.

    Raises `DataConversionError` saying why not. Stricter than Go on purpose: NaN and
    infinities are refused for `float`, an `int` string outside int64 is refused.
    """
    data_type = DataType.from_string(data_type)
    match data_type:
        case DataType.ANY | DataType.NIL:
            return value
        case DataType.STRING:
            return _to_string(value)
        case DataType.BOOL:
            return _to_bool(value, data_type)
        case DataType.INT:
            return _to_int(value, data_type)
        case DataType.FLOAT:
            return _to_float(value, data_type)
        case DataType.VECTOR:
            raw = _load_json(value, data_type)
            if isinstance(raw, (list, tuple)) and all(_is_number(x) for x in raw):
                return [float(x) for x in raw]
            raise _fail(value, data_type, "expected a list of numbers")
        case DataType.SEARCH_RESULTS:
            raw = _load_json(value, data_type)
            if not isinstance(raw, list):
                raise _fail(value, data_type, "expected a list")
            return [_model(item, SearchResult, data_type) for item in raw]
        case DataType.JSON:
            return _to_json(value, data_type)
        case DataType.CHAT_HISTORY:
            if isinstance(value, str) and not value.lstrip().startswith("{"):
                # A bare prompt becomes a one-message conversation.
                return ChatHistory(messages=[Message(role="user", content=value)])
            return _model(value, ChatHistory, data_type)
        case DataType.OPENAI_CHAT:
            return _model(value, OpenAIChatRequest, data_type)
        case DataType.OPENAI_CHAT_RESPONSE:
            return _model(value, OpenAIChatResponse, data_type)
    raise _fail(value, data_type)  # pragma: no cover - every member is matched above
