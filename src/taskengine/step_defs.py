"""Step definitions of the step-style API: validating `task_steps`, prompts, and step results.

`compile_steps` turns the seed's step dicts into frozen `TaskStep` models and reports every
problem at once; `parse_reply` and `validate_result` check a step's result against its
optional pydantic `response_model` or JSON Schema `output_schema`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskengine.chain import (
    TERM_END,
    RetryPolicy,
    TaskChainDefinition,
    TaskDefinition,
    TaskTransition,
    TransitionBranch,
)
from taskengine.chain.problems import key_path
from taskengine.datatypes import to_jsonable
from taskengine.errors import ChainValidationError, LintProblem, StepValidationError
from taskengine.handlers.output_schema import schema_validator, validate_json
from taskengine.seconds import Seconds
from taskengine.suggest import did_you_mean

__all__ = [
    "STEP_HANDLER_PREFIX",
    "StepResult",
    "TaskStep",
    "build_chain",
    "compile_steps",
    "duration",
    "is_envelope",
    "latest_envelope",
    "missing_info_error",
    "parse_reply",
    "render_prompt",
    "snake_case",
    "validate_result",
]

#: Handler names of step tasks are this prefix plus the step id.
STEP_HANDLER_PREFIX = "step:"


class TaskStep(BaseModel):
    """One entry of `task_steps` (dicts with these keys are validated into this model)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    id: str = Field(..., min_length=1, description="Unique step id; `handle_<id>` implements it.")
    name: str = Field("", description="Human-readable name.")
    required_info: list[str] = Field(
        default_factory=list, description="Keys the data must hold first."
    )
    instruction: str = Field("", description="What the model is asked to do in this step.")
    response_model: type[BaseModel] | None = Field(
        None, description="Pydantic model the result must fit."
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the result must satisfy."
    )
    retries: int | None = Field(
        None, ge=0, description="Retries of this step (default: max_retries)."
    )
    timeout: Seconds | None = Field(
        None,
        gt=0,
        description="Seconds (or '30s', '2m') this step may take (default: step_timeout).",
    )


_RESERVED_IDS = {TERM_END, "input", "previous_output", "last_error"}


def compile_steps(raw: list[Any], *, chain_id: str) -> dict[str, TaskStep]:
    """Validate `task_steps`; every problem is reported at once in a `ChainValidationError`."""
    problems: list[LintProblem] = []
    steps: dict[str, TaskStep] = {}

    def problem(message: str, index: int, task_id: str | None, loc: tuple[Any, ...] = ()) -> None:
        path = key_path(loc, f"task_steps[{index}]")
        problems.append(LintProblem(message, chain_id=chain_id, task_id=task_id, path=path))

    if not raw:
        problems.append(LintProblem("no task_steps to run", chain_id=chain_id, path="task_steps"))
    for index, item in enumerate(raw):
        given_id = item.get("id") if isinstance(item, Mapping) else getattr(item, "id", None)
        task_id = str(given_id) if given_id else None
        if isinstance(item, TaskStep):
            step = item
        elif isinstance(item, Mapping):
            try:
                step = TaskStep.model_validate(dict(item))
            except ValidationError as exc:
                for err in exc.errors():
                    key = ".".join(str(p) for p in err["loc"])
                    if err["type"] == "extra_forbidden":
                        hint = did_you_mean(key, TaskStep.model_fields)
                        problem(f"unknown key {key!r}{hint}", index, task_id, err["loc"])
                    else:
                        problem(
                            "is required" if err["type"] == "missing" else err["msg"],
                            index,
                            task_id,
                            err["loc"],
                        )
                continue
        else:
            problem(f"a step must be a dict, got {type(item).__name__}", index, None)
            continue
        if step.id in _RESERVED_IDS:
            problem(f"{step.id!r} is reserved and cannot be a step id", index, step.id, ("id",))
        elif step.id in steps:
            problem(f"duplicate step id {step.id!r}", index, step.id, ("id",))
        if step.output_schema is not None:
            import jsonschema

            try:
                schema_validator(step.output_schema)  # checks the schema, warms the cache
            except jsonschema.SchemaError as exc:
                problem(
                    f"not a valid JSON Schema: {exc.message}", index, step.id, ("output_schema",)
                )
        steps.setdefault(step.id, step)
    if problems:
        raise ChainValidationError(problems, chain_id=chain_id)
    return steps


_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_reply(text: str, step: TaskStep) -> Any:
    """A JSON reply as data; tolerates a Markdown code fence and prose around one object or array."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        for opening, closing in (("{", "}"), ("[", "]")):
            start, end = body.find(opening), body.rfind(closing)
            if 0 <= start < end:
                try:
                    return json.loads(body[start : end + 1])
                except json.JSONDecodeError:
                    pass
        shown = body if len(body) <= 80 else body[:79] + "…"
        raise StepValidationError(
            f"the reply is not valid JSON ({exc.msg}): {shown!r}", task_id=step.id, field="response"
        ) from exc


def validate_result(step: TaskStep, value: Any) -> Any:
    """`value` checked against the step's `response_model` and `output_schema` (JSON-safe on return)."""
    if step.response_model is not None:
        try:
            value = step.response_model.model_validate(value).model_dump(mode="json")
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise StepValidationError(
                f"the result does not match {step.response_model.__name__}: {detail}",
                task_id=step.id,
                field="response_model",
            ) from exc
    if step.output_schema is not None:
        import jsonschema

        try:
            validate_json(to_jsonable(value), step.output_schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise StepValidationError(
                f"the result does not match output_schema at {where}: {exc.message}",
                task_id=step.id,
                field="output_schema",
            ) from exc
    return value


def render_prompt(instruction: str, context: Any) -> str:
    """The text `llm_call` sends: the instruction, then the context (JSON unless it is text)."""
    if isinstance(context, Mapping) and context.get("instruction") == instruction:
        context = {k: v for k, v in context.items() if k != "instruction"}
    if context is None or context == {} or context == "":
        return instruction
    body = (
        context
        if isinstance(context, str)
        else json.dumps(to_jsonable(context), ensure_ascii=False, indent=2)
    )
    return f"{instruction}\n\nContext:\n{body}" if instruction else body


class StepResult(dict):
    """What `execute()` returns: the final accumulated data (a plain dict) plus facts about the run.

    Attributes: `run_id`, `chain_id`, `status` ("succeeded", or "failed" on a partial result),
    `steps` ({step_id: that step's own result}, in execution order), `totals` (tokens, cost,
    llm_ms …) and `state` (the run's `CapturedStateUnit`s, earlier processes' steps included).
    """

    __slots__ = ("chain_id", "run_id", "state", "status", "steps", "totals")

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        run_id: str,
        chain_id: str,
        status: str,
        steps: Mapping[str, Any],
        totals: Mapping[str, Any] | None = None,
        state: list[Any] | None = None,
    ) -> None:
        super().__init__(data)
        self.run_id = run_id
        self.chain_id = chain_id
        self.status = status
        self.steps = dict(steps)
        self.totals = dict(totals or {})
        self.state = list(state or [])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary: runId, chainId, status, data, steps, totals."""
        return {
            "runId": self.run_id,
            "chainId": self.chain_id,
            "status": self.status,
            "data": dict(self),
            "steps": self.steps,
            "totals": self.totals,
        }


def missing_info_error(step: TaskStep, missing: list[str], **where: Any) -> StepValidationError:
    """The error for a step whose `required_info` keys are not in the data yet."""
    label = f"step {step.id!r}" + (f" ({step.name})" if step.name and step.name != step.id else "")
    return StepValidationError(
        f"{label} is missing required info: {', '.join(missing)}",
        missing=missing,
        task_id=step.id,
        field="required_info",
        **where,
    )


def build_chain(
    steps: Mapping[str, TaskStep],
    *,
    chain_id: str,
    retries: int,
    timeout: float | None,
    retry_base: float,
    retry_max: float,
) -> TaskChainDefinition:
    """The linear chain of `steps`: task `<id>` with handler `step:<id>`, each fed the one before."""
    ids = list(steps)
    tasks = []
    for index, step in enumerate(steps.values()):
        goto = ids[index + 1] if index + 1 < len(ids) else TERM_END
        tasks.append(
            TaskDefinition(
                id=step.id,
                description=step.name,
                handler=STEP_HANDLER_PREFIX + step.id,
                input_var="input" if index == 0 else ids[index - 1],
                retry_on_failure=step.retries if step.retries is not None else retries,
                timeout=duration(step.timeout if step.timeout is not None else timeout),
                transition=TaskTransition(
                    branches=[TransitionBranch(operator="default", goto=goto)]
                ),
            )
        )
    policy = None
    if retry_base > 0 and retry_max > 0:
        policy = RetryPolicy(base=duration(retry_base), max=duration(retry_max))
    chain = TaskChainDefinition(
        id=chain_id, tasks=tasks, max_steps=max(1000, len(tasks)), retry_policy=policy
    )
    from taskengine.chain.lint import lint_chain

    handlers = [t.handler for t in tasks]
    errors = [p for p in lint_chain(chain, extra_handlers=handlers) if p.severity == "error"]
    if errors:
        raise ChainValidationError(errors, chain_id=chain_id)
    return chain


def is_envelope(value: Any) -> bool:
    """True for a step task's output: `{"data": {...}, "steps": {...}}`."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("data"), dict)
        and isinstance(value.get("steps"), dict)
    )


def latest_envelope(chain: TaskChainDefinition, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The output of the last step that completed, or the run's input when none has."""
    for task in reversed(chain.tasks):
        value = variables.get(task.id)
        if isinstance(value, dict) and is_envelope(value):
            return value
    start = variables.get("input")
    return {"data": dict(start) if isinstance(start, Mapping) else {}, "steps": {}}


def duration(seconds: float | None) -> str:
    """Seconds as a Go-style duration string ("" for None); microsecond precision."""
    if seconds is None:
        return ""
    text = f"{seconds * 1000:.3f}".rstrip("0").rstrip(".")
    return f"{text}ms" if text not in ("", "0") else ""


def snake_case(name: str) -> str:
    """`ReviewTask` -> `review_task` (the default chain id of a subclass)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
