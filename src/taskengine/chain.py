"""Chain definitions: the seed's types as frozen pydantic models, plus loading and JSON Schema.

`load_chain()` reads YAML or JSON (a path, a text, or a dict), validates every field, runs the
linter, and returns an immutable `TaskChainDefinition`. Every problem found is reported at
once in a `ChainValidationError`, each naming the chain, the task and the field path.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from taskengine.errors import (
    ChainLoadError,
    ChainValidationError,
    DataConversionError,
    LintProblem,
)
from taskengine.transitions import OPERATORS

__all__ = [
    "TERM_END",
    "ChainDefinition",
    "ChainTerms",
    "ComposeTask",
    "HookCall",
    "LLMExecutionConfig",
    "RetryPolicy",
    "TaskChainDefinition",
    "TaskDefinition",
    "TaskHandler",
    "TaskTransition",
    "TransitionBranch",
    "chain_json_schema",
    "load_chain",
    "parse_chain",
    "parse_duration",
]

TERM_END = "end"


class ChainTerms(StrEnum):
    """Reserved words of chains (Go: `ChainTerms`)."""

    END = TERM_END


class TaskHandler(StrEnum):
    """How a task produces and interprets its output (Go: `TaskHandler`)."""

    CONDITION_KEY = "condition_key"
    PARSE_NUMBER = "parse_number"
    PARSE_SCORE = "parse_score"
    PARSE_RANGE = "parse_range"
    RAW_STRING = "raw_string"
    EMBEDDING = "embedding"
    RAISE_ERROR = "raise_error"
    MODEL_EXECUTION = "model_execution"
    EXECUTE_TOOL_CALLS = "execute_tool_calls"
    PARSE_TRANSITION = "parse_transition"
    PARSE_KEY_VALUE = "parse_key_value"
    CONVERT_TO_OPENAI_CHAT_RESPONSE = "convert_to_openai_chat_response"
    NOOP = "noop"
    HOOK = "hook"


def _suggest_values(values: list[str]) -> dict[str, Any]:
    """JSON Schema that offers `values` to editors while still accepting any string."""
    return {"anyOf": [{"enum": values}, {"type": "string"}]}


_OPERATORS = list(OPERATORS)

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


class _Frozen(BaseModel):
    # Go's encoders write unset slices and maps as null and YAML may give a number where Go
    # reads a string: accept both, so chains exported by the Go engine load unchanged.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def dump(self) -> dict[str, Any]:
        """The definition as chain-file keys, without unset optional fields."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


class LLMExecutionConfig(_Frozen):
    """Which model(s) and provider(s) a task uses; lists are candidates tried in order."""

    model: str = Field("", description="Model name, e.g. 'mistral:instruct'.")
    models: list[str] | None = Field(None, description="Candidate models, tried in order.")
    provider: str = Field("", description="Provider type or configured provider name.")
    providers: list[str] | None = Field(None, description="Candidate providers, tried in order.")
    temperature: float | None = Field(
        None, description="Sampling temperature; 0 is greedy, unset is the provider's default."
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens the model may generate for this task (parse handlers default to "
        "256, others to the provider's limit).",
    )
    hooks: list[str] | None = Field(None, description="Hooks whose tools are offered to the model.")
    hide_tools: list[str] | None = Field(
        None, description="Tools to hide, as 'tool' or 'hook.tool'."
    )
    pass_clients_tools: bool = Field(
        False, description="Forward tools of an incoming OpenAI request."
    )

    def candidate_models(self) -> list[str]:
        return _candidates(self.model, self.models)

    def candidate_providers(self) -> list[str]:
        return _candidates(self.provider, self.providers)


def _candidates(one: str, many: list[str] | None) -> list[str]:
    out: list[str] = []
    for name in [one, *(many or [])]:
        if name and name not in out:
            out.append(name)
    return out


class HookCall(_Frozen):
    """An external action: hook service `name`, optionally one of its tools, with string args."""

    name: str = Field(..., description="Registered hook name, e.g. 'slack'.")
    tool_name: str = Field("", description="Tool of the hook to invoke.")
    args: dict[str, str] = Field(
        default_factory=dict, description="Arguments; values are templates."
    )

    @field_validator("args", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                str(k): (
                    json.dumps(v)
                    if isinstance(v, (dict, list))
                    else (
                        "true"
                        if v is True
                        else "false"
                        if v is False
                        else ("" if v is None else str(v))
                    )
                )
                for k, v in value.items()
            }
        return value


class ComposeTask(_Frozen):
    """Merge the task's input with another variable before the task runs."""

    with_var: str = Field("", description="Variable to compose the task's output with.")
    strategy: str = Field(
        "",
        description="'override', 'merge_chat_histories' or 'append_string_to_chat_history'.",
    )


class TransitionBranch(_Frozen):
    """One possible next step, taken when the task's output matches `when` under `operator`."""

    operator: str = Field(
        "",
        json_schema_extra=_suggest_values(_OPERATORS),
        description="equals, contains, starts_with, ends_with, >, gt, <, lt, in_range, default.",
    )
    when: str = Field("", description="Value compared with the task's transition value.")
    goto: str = Field("", description="Next task id; 'end' (or empty) ends the chain.")

    @field_validator("when", mode="before")
    @classmethod
    def _when_to_str(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return "" if value is None else value


class TaskTransition(_Frozen):
    """What happens after a task: conditional branches, and a task to jump to on failure."""

    on_failure: str = Field("", description="Task id to jump to when the task fails.")
    branches: list[TransitionBranch] = Field(default_factory=list)


class RetryPolicy(_Frozen):
    """Backoff between retries: exponential from `base` up to `max`, with full jitter."""

    base: str = Field("100ms", description="First delay, e.g. '100ms', '1s'.")
    max: str = Field("10s", description="Longest delay.")
    jitter: bool = Field(True, description="Randomise each delay between 0 and its ceiling.")


class TaskDefinition(_Frozen):
    """A single step in a chain; its handler decides how the prompt or hook result is read."""

    id: str = Field(..., description="Unique id of the task in the chain.")
    description: str = ""
    handler: str = Field(
        ...,
        description="How the output is produced and interpreted.",
        json_schema_extra=_suggest_values([h.value for h in TaskHandler]),
    )
    system_instruction: str = ""
    valid_conditions: dict[str, bool] | None = None
    execute_config: LLMExecutionConfig | None = None
    hook: HookCall | None = None
    print: str = ""
    prompt_template: str = ""
    output_template: str = ""
    input_var: str = ""
    compose: ComposeTask | None = None
    transition: TaskTransition = Field(default_factory=TaskTransition)
    timeout: str = Field("", description="Go-style duration: '10s', '2m', '1h30m'.")
    retry_on_failure: int = Field(0, ge=0)
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the task's output must satisfy."
    )


class TaskChainDefinition(_Frozen):
    """A chain of tasks with branching, retries and model preferences."""

    id: str = ""
    debug: bool = False
    description: str = ""
    tasks: list[TaskDefinition] = Field(default_factory=list)
    token_limit: int = 0
    max_steps: int = Field(1000, ge=1, description="Stops a runaway loop after this many steps.")
    retry_policy: RetryPolicy | None = None
    #: compiled run plans by engine options (see SimpleEnv); never part of the definition
    _plans: dict[Any, Any] = PrivateAttr(default_factory=dict)
    #: (id, extra handlers) keys this object passed lint with (engines lint definition objects once)
    _linted: set[Any] = PrivateAttr(default_factory=set)

    def task(self, task_id: str) -> TaskDefinition | None:
        for t in self.tasks:
            if t.id == task_id:
                return t
        return None


ChainDefinition = TaskChainDefinition


# --- loading --------------------------------------------------------------------------------

_MODELS_BY_PATH: dict[str, type[BaseModel]] = {}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _suggest(key: str, model: type[BaseModel]) -> str:
    fields = list(model.model_fields)
    snake = _snake(key)
    if snake in fields and snake != key:
        return f" (did you mean {snake!r}? chain files use snake_case keys)"
    close = difflib.get_close_matches(snake, fields, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def _field_path(loc: tuple[Any, ...], raw: Any) -> tuple[str | None, str]:
    """Turn ('tasks', 2, 'transition', 'branches', 0, 'goto') into (task id, 'transition.branches[0].goto')."""
    task_id = None
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "tasks" and isinstance(rest[1], int):
        idx = rest[1]
        tasks = raw.get("tasks") if isinstance(raw, Mapping) else None
        if isinstance(tasks, list) and idx < len(tasks) and isinstance(tasks[idx], Mapping):
            tid = tasks[idx].get("id")
            task_id = str(tid) if tid else f"#{idx}"
        else:
            task_id = f"#{idx}"
        rest = rest[2:]
    path = ""
    for part in rest:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return task_id, path


def _problems_from_validation(
    exc: ValidationError, raw: Any, chain_id: str | None
) -> list[LintProblem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        task_id, path = _field_path(loc, raw)
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            message = f"unknown key {key!r}{_suggest(key, _model_at(loc))}"
        elif err["type"] == "missing":
            message = "is required"
        else:
            message = err["msg"]
            if "input" in err and err["type"] not in ("model_type",):
                shown = repr(err["input"])
                message += f" (got {shown[:60]})"
        problems.append(LintProblem(message, chain_id=chain_id, task_id=task_id, path=path or None))
    return problems


def _read_source(source: str | Path | Mapping[str, Any]) -> tuple[Any, str | None]:
    """Return the parsed document and a label for messages (file name or None)."""
    if isinstance(source, Mapping):
        return _checked_tree(dict(source), None), None
    if isinstance(source, Path) or (
        isinstance(source, str)
        and "\n" not in source
        and not source.lstrip().startswith(("{", "["))
        and (source.endswith((".yaml", ".yml", ".json")) or _is_file(source))
    ):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ChainLoadError(f"chain file not found: {path}") from None
        except OSError as exc:
            raise ChainLoadError(f"cannot read chain file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ChainLoadError(f"chain file {path} is not UTF-8 text (byte {exc.start})") from exc
        return _checked_tree(_parse_text(text, str(path)), str(path)), str(path)
    return _checked_tree(_parse_text(str(source), None), None), None


def _is_file(text: str) -> bool:
    """Whether `text` names an existing file (a name too long for the OS names none)."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def _checked_tree(raw: Any, label: str | None) -> Any:
    """The parsed document, refused when it nests too deeply or holds a lone surrogate."""
    from taskengine.bounds import check_depth

    try:
        return check_depth(raw, field="chain")
    except DataConversionError as exc:
        where = f"{label}: " if label else ""
        raise ChainLoadError(f"{where}{exc.message}", field=exc.field) from None


def _parse_text(text: str, label: str | None) -> Any:
    where = label or "chain text"
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text)
        except RecursionError:
            raise ChainLoadError(f"{where}: JSON nests too deeply", field="chain") from None
        except json.JSONDecodeError as exc:
            raise ChainLoadError(
                f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ChainLoadError(f"{where}: YAML nests too deeply", field="chain") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ChainLoadError(f"{where}: invalid YAML{pos}: {problem}") from exc


def parse_chain(
    source: str | Path | Mapping[str, Any], *, extra_handlers: Iterable[str] = ()
) -> tuple[TaskChainDefinition | None, list[LintProblem]]:
    """Parse and lint without raising for validation problems (used by `taskengine validate`).

    `extra_handlers` names handlers an executor adds to the built-in ones (step-style `step:<id>`).
    """
    from taskengine.lint import lint_chain

    raw, label = _read_source(source)
    if not isinstance(raw, Mapping):
        kind = type(raw).__name__ if raw is not None else "nothing"
        raise ChainLoadError(
            f"{label or 'chain'}: expected a mapping with 'id' and 'tasks', got {kind}"
        )
    chain_id = str(raw.get("id")) if raw.get("id") else (Path(label).stem if label else None)
    try:
        chain = TaskChainDefinition.model_validate(raw)
    except ValidationError as exc:
        from taskengine.lint import lint_partial

        problems = _problems_from_validation(exc, raw, chain_id)
        return None, problems + lint_partial(raw, chain_id, extra_handlers=extra_handlers)
    if not chain.id and chain_id:
        chain = chain.model_copy(update={"id": chain_id})
    return chain, lint_chain(chain, extra_handlers=extra_handlers)


def load_chain(
    source: str | Path | Mapping[str, Any] | TaskChainDefinition,
    *,
    extra_handlers: Iterable[str] = (),
) -> TaskChainDefinition:
    """Load, validate and lint a chain; raise `ChainValidationError` with every problem found.

    `extra_handlers` names handlers an executor adds to the built-in ones (step-style `step:<id>`).
    """
    if isinstance(source, TaskChainDefinition):
        from taskengine.lint import lint_chain

        problems = lint_chain(source, extra_handlers=extra_handlers)
        chain: TaskChainDefinition | None = source
    else:
        chain, problems = parse_chain(source, extra_handlers=extra_handlers)
    errors = [p for p in problems if p.severity == "error"]
    if errors or chain is None:
        chain_id = chain.id if chain else next((p.chain_id for p in problems if p.chain_id), None)
        raise ChainValidationError(problems, chain_id=chain_id)
    return chain


def chain_json_schema() -> dict[str, Any]:
    """JSON Schema of a chain file (for editors' autocompletion)."""
    schema = TaskChainDefinition.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "taskengine chain"
    return schema
