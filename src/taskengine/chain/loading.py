"""Loading chains: from a file, a YAML/JSON text or a dict, validated and linted.

`load_chain_file`, `load_chain_text` and `load_chain_dict` each read one kind of source;
`load_chain` accepts any of them (a string naming an existing `.yaml`/`.yml`/`.json` file is
read as a path) or a definition object. Every problem found is reported at once in a
`ChainValidationError`, each naming the chain, the task and the field path; `parse_chain`
returns the problems instead of raising (for `taskengine validate`).

A definition that passed lint remembers it: loading it again (an engine checking the chain a
CLI just loaded) lints only for handler names it was not checked with (`lint_once`).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from taskengine.chain.lint import BUILTIN_HANDLERS, lint_chain, lint_partial
from taskengine.chain.model import TaskChainDefinition
from taskengine.chain.problems import problems_from_validation
from taskengine.errors import ChainLoadError, ChainValidationError, DataConversionError, LintProblem

__all__ = [
    "lint_once",
    "load_chain",
    "load_chain_dict",
    "load_chain_file",
    "load_chain_text",
    "parse_chain",
    "parse_chain_dict",
    "parse_chain_file",
    "parse_chain_text",
    "passed_lint",
]

ChainSource = str | Path | Mapping[str, Any]
Parsed = tuple[TaskChainDefinition | None, list[LintProblem]]


# --- reading one kind of source -------------------------------------------------------------


def _checked_tree(raw: Any, label: str | None) -> Any:
    """The parsed document, refused when it nests too deeply or holds a lone surrogate."""
    from taskengine.bounds import check_depth

    try:
        return check_depth(raw, field="chain")
    except DataConversionError as exc:
        where = f"{label}: " if label else ""
        raise ChainLoadError(f"{where}{exc.message}", field=exc.field) from None


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ChainLoadError(f"{where}: JSON nests too deeply", field="chain") from None
    except json.JSONDecodeError as exc:
        raise ChainLoadError(
            f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ChainLoadError(f"{where}: YAML nests too deeply", field="chain") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ChainLoadError(f"{where}: invalid YAML{pos}: {problem}") from exc


def _text_tree(text: str, label: str | None = None) -> Any:
    """The document of a YAML or JSON text (JSON when it starts with `{` or `[`)."""
    where = label or "chain text"
    if text.lstrip().startswith(("{", "[")):
        raw = _parse_json(text, where)
    else:
        raw = _parse_yaml(text, where)
    return _checked_tree(raw, label)


def _file_tree(path: Path) -> Any:
    """The document of a chain file (UTF-8 YAML or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ChainLoadError(f"chain file not found: {path}") from None
    except OSError as exc:
        raise ChainLoadError(f"cannot read chain file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ChainLoadError(f"chain file {path} is not UTF-8 text (byte {exc.start})") from exc
    return _text_tree(text, str(path))


def _is_file(text: str) -> bool:
    """Whether `text` names an existing file (a name too long for the OS names none)."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def _names_file(source: str | Path) -> bool:
    """Whether `load_chain` reads `source` as a path rather than as the chain's text."""
    if isinstance(source, Path):
        return True
    return (
        "\n" not in source
        and not source.lstrip().startswith(("{", "["))
        and (source.endswith((".yaml", ".yml", ".json")) or _is_file(source))
    )


# --- validation and lint --------------------------------------------------------------------


def _validate(raw: Any, label: str | None, extra_handlers: Iterable[str]) -> Parsed:
    """The definition of a parsed document and every problem found in it."""
    if not isinstance(raw, Mapping):
        kind = type(raw).__name__ if raw is not None else "nothing"
        raise ChainLoadError(
            f"{label or 'chain'}: expected a mapping with 'id' and 'tasks', got {kind}"
        )
    chain_id = str(raw.get("id")) if raw.get("id") else (Path(label).stem if label else None)
    try:
        chain = TaskChainDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = problems_from_validation(exc, raw, chain_id)
        return None, problems + lint_partial(raw, chain_id, extra_handlers=extra_handlers)
    if not chain.id and chain_id:
        chain = chain.model_copy(update={"id": chain_id})
    return chain, lint_chain(chain, extra_handlers=extra_handlers)


def parse_chain_file(path: str | Path, *, extra_handlers: Iterable[str] = ()) -> Parsed:
    """Parse and lint a chain file without raising for validation problems."""
    path = Path(path)
    return _validate(_file_tree(path), str(path), extra_handlers)


def parse_chain_text(text: str, *, extra_handlers: Iterable[str] = ()) -> Parsed:
    """Parse and lint a YAML or JSON text without raising for validation problems."""
    return _validate(_text_tree(text), None, extra_handlers)


def parse_chain_dict(data: Mapping[str, Any], *, extra_handlers: Iterable[str] = ()) -> Parsed:
    """Validate and lint a chain given as a dict without raising for validation problems."""
    return _validate(_checked_tree(dict(data), None), None, extra_handlers)


def parse_chain(source: ChainSource, *, extra_handlers: Iterable[str] = ()) -> Parsed:
    """Parse and lint without raising for validation problems (used by `taskengine validate`).

    `extra_handlers` names handlers an executor adds to the built-in ones (step-style `step:<id>`).
    """
    if isinstance(source, Mapping):
        return parse_chain_dict(source, extra_handlers=extra_handlers)
    if _names_file(source):
        return parse_chain_file(source, extra_handlers=extra_handlers)
    return parse_chain_text(str(source), extra_handlers=extra_handlers)


def _accepted(parsed: Parsed, extra_handlers: Iterable[str]) -> TaskChainDefinition:
    """The definition when no problem is an error (remembered as linted), else raise them all."""
    chain, problems = parsed
    errors = [p for p in problems if p.severity == "error"]
    if errors or chain is None:
        chain_id = chain.id if chain else next((p.chain_id for p in problems if p.chain_id), None)
        raise ChainValidationError(problems, chain_id=chain_id)
    _remember_pass(chain, _handler_set(extra_handlers))
    return chain


def _handler_set(extra_handlers: Iterable[str]) -> frozenset[str]:
    return BUILTIN_HANDLERS | frozenset(extra_handlers)


#: id(definition) -> (weak reference, handler sets it passed lint with); kept off the model so
#: equality and copies are untouched, and dropped when the definition is garbage-collected
_LINT_PASSES: dict[int, tuple[weakref.ref[TaskChainDefinition], list[frozenset[str]]]] = {}


def _forget(key: int) -> Callable[[object], None]:
    """The callback that drops the passes of a definition when it is garbage-collected."""

    def forget(_ref: object) -> None:
        _LINT_PASSES.pop(key, None)

    return forget


def _remember_pass(chain: TaskChainDefinition, handlers: frozenset[str]) -> None:
    key = id(chain)
    entry = _LINT_PASSES.get(key)
    if entry is None or entry[0]() is not chain:
        entry = _LINT_PASSES[key] = (weakref.ref(chain, _forget(key)), [])
    entry[1].append(handlers)


def passed_lint(chain: TaskChainDefinition, extra_handlers: Iterable[str] = ()) -> bool:
    """Whether `chain` passed lint with these handlers (or fewer: more handlers cannot fail it)."""
    entry = _LINT_PASSES.get(id(chain))
    if entry is None or entry[0]() is not chain:
        return False
    wanted = _handler_set(extra_handlers)
    return any(names <= wanted for names in entry[1])


def lint_once(
    chain: TaskChainDefinition, *, extra_handlers: Iterable[str] = ()
) -> TaskChainDefinition:
    """`chain`, linted unless it already passed; raise `ChainValidationError` on errors."""
    extra_handlers = tuple(extra_handlers)
    if passed_lint(chain, extra_handlers):
        return chain
    return _accepted((chain, lint_chain(chain, extra_handlers=extra_handlers)), extra_handlers)


def load_chain_file(path: str | Path, *, extra_handlers: Iterable[str] = ()) -> TaskChainDefinition:
    """Load, validate and lint a chain file; raise `ChainValidationError` with every problem."""
    extra_handlers = tuple(extra_handlers)
    return _accepted(parse_chain_file(path, extra_handlers=extra_handlers), extra_handlers)


def load_chain_text(text: str, *, extra_handlers: Iterable[str] = ()) -> TaskChainDefinition:
    """Load, validate and lint a YAML or JSON text; raise `ChainValidationError` on errors."""
    extra_handlers = tuple(extra_handlers)
    return _accepted(parse_chain_text(text, extra_handlers=extra_handlers), extra_handlers)


def load_chain_dict(
    data: Mapping[str, Any], *, extra_handlers: Iterable[str] = ()
) -> TaskChainDefinition:
    """Validate and lint a chain given as a dict; raise `ChainValidationError` on errors."""
    extra_handlers = tuple(extra_handlers)
    return _accepted(parse_chain_dict(data, extra_handlers=extra_handlers), extra_handlers)


def load_chain(
    source: ChainSource | TaskChainDefinition, *, extra_handlers: Iterable[str] = ()
) -> TaskChainDefinition:
    """Load, validate and lint a chain; raise `ChainValidationError` with every problem found.

    `extra_handlers` names handlers an executor adds to the built-in ones (step-style `step:<id>`).
    A definition object is linted once per set of handlers (`lint_once`).
    """
    extra_handlers = tuple(extra_handlers)
    if isinstance(source, TaskChainDefinition):
        return lint_once(source, extra_handlers=extra_handlers)
    return _accepted(parse_chain(source, extra_handlers=extra_handlers), extra_handlers)
