"""The chain definition: the seed's types as frozen pydantic models, and their JSON Schema.

Loading (path, text or dict) is in `taskengine.chain.loading`, the checks beyond the schema in
`taskengine.chain.lint`. Every duration field is a `Duration` (the text plus its seconds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from taskengine.chain.duration import Duration
from taskengine.empty import empty_dict, empty_list
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


class _Frozen(BaseModel):
    # Go's encoders write unset slices and maps as null and YAML may give a number where Go
    # reads a string: accept both, so chains exported by the Go engine load unchanged.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        coerce_numbers_to_str=True,
        defer_build=True,
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
        default_factory=empty_dict, description="Arguments; values are templates."
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
    branches: list[TransitionBranch] = Field(default_factory=empty_list)


class RetryPolicy(_Frozen):
    """Backoff between retries: exponential from `base` up to `max`, with full jitter."""

    base: Duration = Field(Duration("100ms"), description="First delay, e.g. '100ms', '1s'.")
    max: Duration = Field(Duration("10s"), description="Longest delay.")
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
    transition: TaskTransition = Field(default_factory=TaskTransition.model_construct)
    timeout: Duration = Field(Duration(""), description="Go-style duration: '10s', '2m', '1h30m'.")
    retry_on_failure: int = Field(0, ge=0)
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the task's output must satisfy."
    )


class TaskChainDefinition(_Frozen):
    """A chain of tasks with branching, retries and model preferences."""

    id: str = ""
    debug: bool = False
    description: str = ""
    tasks: list[TaskDefinition] = Field(default_factory=empty_list)
    token_limit: int = 0
    max_steps: int = Field(1000, ge=1, description="Stops a runaway loop after this many steps.")
    retry_policy: RetryPolicy | None = None
    #: compiled run plans by engine options (see SimpleEnv); never part of the definition
    _plans: dict[Any, Any] = PrivateAttr(default_factory=dict)
    #: (id, extra handlers) keys this object passed lint with (engines lint definition objects once)
    _linted: set[Any] = PrivateAttr(default_factory=set)
    #: (id of the object it was built for, `stored_form()`); never part of the definition
    _stored: tuple[int, dict[str, Any]] | None = PrivateAttr(default=None)

    def stored_form(self) -> dict[str, Any]:
        """The definition as JSON data, as each run record keeps it.

        Built once per object (the model is frozen) instead of once per run, and shared by the
        records of its runs, which the stores only encode. `model_copy()` shares private
        attributes with the original, hence the id check.
        """
        cached = self._stored
        if cached is None or cached[0] != id(self):
            dumped = self.model_dump(mode="json", exclude_none=True, exclude_unset=True)
            cached = self._stored = (id(self), dumped)
        return cached[1]

    def task(self, task_id: str) -> TaskDefinition | None:
        for t in self.tasks:
            if t.id == task_id:
                return t
        return None


ChainDefinition = TaskChainDefinition


def chain_json_schema() -> dict[str, Any]:
    """JSON Schema of a chain file (for editors' autocompletion)."""
    schema = TaskChainDefinition.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "taskengine chain"
    return schema
