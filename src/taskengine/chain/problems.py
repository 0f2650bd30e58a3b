"""Schema errors of a chain file as `LintProblem`s: task id, field path and a readable message.

pydantic reports `('tasks', 2, 'transition', 'branches', 0, 'goto')`; authors read
`task 'triage', transition.branches[0].goto`, and an unknown key comes with a "did you mean".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from taskengine.chain.model import TaskChainDefinition
from taskengine.errors import LintProblem
from taskengine.suggest import did_you_mean

__all__ = ["key_path", "problems_from_validation"]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _suggest(key: str, model: type[BaseModel]) -> str:
    fields = list(model.model_fields)
    snake = _snake(key)
    if snake in fields and snake != key:
        return f" (did you mean {snake!r}? chain files use snake_case keys)"
    return did_you_mean(snake, fields)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The pydantic model that owns the last key of a validation location."""
    model: type[BaseModel] = TaskChainDefinition
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            break
        sub = _inner_model(field.annotation)
        if sub is None:
            break
        model = sub
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _task_label(raw: Any, index: int) -> str:
    """The id of task number `index` in the raw document, or `#index` when it has none."""
    tasks = raw.get("tasks") if isinstance(raw, Mapping) else None
    if isinstance(tasks, list) and index < len(tasks) and isinstance(tasks[index], Mapping):
        tid = tasks[index].get("id")
        return str(tid) if tid else f"#{index}"
    return f"#{index}"


#: keys written bare in a path; any other key is quoted: `[""]`, `["a.b"]`
_PLAIN_KEY = re.compile(r"[^\s.\[\]\"]+")


def _field_path(loc: tuple[Any, ...], raw: Any) -> tuple[str | None, str]:
    """Turn ('tasks', 2, 'transition', 'branches', 0, 'goto') into (task id, 'transition.branches[0].goto')."""
    task_id = None
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "tasks" and isinstance(rest[1], int):
        task_id = _task_label(raw, rest[1])
        rest = rest[2:]
    return task_id, key_path(rest)


def key_path(parts: Iterable[Any], path: str = "") -> str:
    """`path` extended by the parts of a validation location: `branches[0].goto`.

    A key that is empty or holds '.', '[', ']', '"' or spaces is quoted (`[""]`, `["a.b"]`),
    so the path still names it."""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            path += ("." if path else "") + str(part)
        else:
            path += f"[{json.dumps(str(part))}]"
    return path


def _message(err: Any, loc: tuple[Any, ...]) -> str:
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        return f"unknown key {key!r}{_suggest(key, _model_at(loc))}"
    if err["type"] == "missing":
        return "is required"
    message = err["msg"]
    if "input" in err and err["type"] not in ("model_type",):
        shown = repr(err["input"])
        message += f" (got {shown[:60]})"
    return message


def problems_from_validation(
    exc: ValidationError, raw: Any, chain_id: str | None
) -> list[LintProblem]:
    """One problem per schema error of the raw document `raw`."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        task_id, path = _field_path(loc, raw)
        problems.append(
            LintProblem(_message(err, loc), chain_id=chain_id, task_id=task_id, path=path or None)
        )
    return problems
