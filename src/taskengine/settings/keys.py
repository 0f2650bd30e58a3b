"""Where a setting lives and how a problem with it reads: key paths, declared types, messages."""

from __future__ import annotations

import json
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from taskengine.config import ConfigProblem, Settings
from taskengine.errors import ConfigError
from taskengine.suggest import closest

__all__ = [
    "annotation_at",
    "choice_message",
    "config_error",
    "field_names",
    "format_key_path",
    "short_repr",
    "unknown_key_message",
]


def format_key_path(loc: tuple[Any, ...]) -> str:
    """('providers', 1, 'base_url') -> 'providers[1].base_url'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _strip_optional(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def annotation_at(loc: tuple[Any, ...]) -> Any:
    """The declared type at a key path of Settings, or None when the path leaves the schema."""
    tp: Any = Settings
    for part in loc:
        tp = _strip_optional(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _model_field(tp, str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) in (list, tuple):
            tp = (get_args(tp) or (Any,))[0]
        elif get_origin(tp) is dict:
            tp = (get_args(tp) or (Any, Any))[1]
        else:
            return None
    return _strip_optional(tp)


def _model_field(model: type[BaseModel], name: str) -> Any:
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None


def field_names(model: Any) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def unknown_key_message(key: str, parent: tuple[Any, ...]) -> str:
    names = field_names(annotation_at(parent))
    guess = closest(key.lower(), names)
    if guess is not None:
        return f"unknown key {key!r} (did you mean {guess!r}?)"
    return (
        f"unknown key {key!r}; expected one of: {', '.join(sorted(names))}"
        if names
        else f"unknown key {key!r}"
    )


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_error(problems: list[ConfigProblem], file: str | None) -> ConfigError:
    if len(problems) == 1:
        only = problems[0]
        text = f"{only.key_path}: {only.message}" if only.key_path else only.message
        err = ConfigError(text, file=only.source)
        # set after construction: ConfigError's `field` would print the key path a second time
        err.key_path = only.key_path or None
    else:
        lines = "\n".join(f"  {p}" for p in problems)
        err = ConfigError(f"{len(problems)} configuration problems:\n{lines}")
        err.file = file
        err.key_path = problems[0].key_path or None
    err.problems = problems  # type: ignore[attr-defined]  # one line each for `config check`
    return err


def choice_message(what: str, value: str, choices: Any) -> str:
    guess = closest(value, choices)
    hint = f" (did you mean {guess!r}?)" if guess else f"; expected one of: {', '.join(choices)}"
    return f"unknown {what} {value!r}{hint}"
