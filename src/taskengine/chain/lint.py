"""Static checks beyond the schema, all reported at once with chain, task and field path.

Errors stop a chain from loading; warnings (unreachable tasks, a task with no branches …) are
shown by `taskengine validate` but do not block a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from taskengine.chain.duration import parse_duration
from taskengine.chain.flow import closed_loops, unreachable_tasks
from taskengine.chain.model import (
    TERM_END,
    TaskChainDefinition,
    TaskDefinition,
    TransitionBranch,
)
from taskengine.errors import LintProblem, TemplateError
from taskengine.suggest import did_you_mean
from taskengine.transitions import OPERATORS, first_number, parse_range_bounds

__all__ = ["BUILTIN_HANDLERS", "LLM_HANDLERS", "PROMPT_HANDLERS", "lint_chain", "lint_partial"]

#: Handlers whose reply is read from a prompt sent to a model.
PROMPT_HANDLERS = frozenset(
    {"condition_key", "parse_number", "parse_score", "parse_range", "raw_string"}
)
#: Every handler that calls a model.
LLM_HANDLERS = PROMPT_HANDLERS | {"embedding", "model_execution"}
BUILTIN_HANDLERS = LLM_HANDLERS | {
    "raise_error",
    "execute_tool_calls",
    "parse_transition",
    "parse_key_value",
    "convert_to_openai_chat_response",
    "noop",
    "hook",
}
COMPOSE_STRATEGIES = ("override", "merge_chat_histories", "append_string_to_chat_history")
_NUMERIC_OPS = {">", "gt", "<", "lt"}
_BUILTIN_VARS = {"input", "previous_output", "last_error"}


_BOOLS = ("true", "false")


class _Linter:
    def __init__(
        self, chain: TaskChainDefinition, handlers: frozenset[str], known_ids: Iterable[str] = ()
    ) -> None:
        self.chain = chain
        self.handlers = handlers
        self.problems: list[LintProblem] = []
        self.ids = {t.id for t in chain.tasks if t.id} | set(known_ids)
        self.variables = _BUILTIN_VARS | self.ids | {f"{i}_composed" for i in self.ids}

    def add(
        self,
        message: str,
        task: TaskDefinition | None = None,
        path: str | None = None,
        severity: str = "error",
    ) -> None:
        self.problems.append(
            LintProblem(
                message,
                chain_id=self.chain.id or None,
                task_id=(task.id or None) if task else None,
                path=path,
                severity=severity,
            )
        )

    def run(self) -> list[LintProblem]:
        chain = self.chain
        if not chain.tasks:
            self.add("chain has no tasks", path="tasks")
            return self.problems
        if not chain.id:
            self.add("chain has no id", path="id", severity="warning")
        if chain.token_limit < 0:
            self.add("must not be negative", path="token_limit")
        if chain.retry_policy is not None:
            for key in ("base", "max"):
                self._duration(getattr(chain.retry_policy, key), None, f"retry_policy.{key}")
        seen: set[str] = set()
        for index, task in enumerate(chain.tasks):
            if not task.id.strip():
                self.add(f"task #{index} has an empty id", path=f"tasks[{index}].id")
            elif task.id in seen:
                self.add(f"duplicate task id {task.id!r}", task, "id")
            elif task.id == TERM_END:
                self.add(
                    "'end' is reserved (it ends the chain) and cannot be a task id", task, "id"
                )
            seen.add(task.id)
            self.task(task)
        self.reachability()
        self.closed_cycles()
        return self.problems

    def _duration(self, text: str, task: TaskDefinition | None, path: str) -> None:
        try:
            if parse_duration(text) <= 0:
                self.add(f"duration {text!r} must be positive", task, path)
        except ValueError as exc:
            self.add(str(exc), task, path)

    def _template(
        self, source: str, task: TaskDefinition, path: str, *, check_names: bool = True
    ) -> None:
        if not source:
            return
        from taskengine.templates import compile_template, template_variables

        try:
            compile_template(source)
        except TemplateError as exc:
            self.add(exc.message, task, path)
            return
        if not check_names:
            return
        for name in sorted(template_variables(source) - self.variables):
            self.add(
                f"template refers to unknown variable {name!r}{did_you_mean(name, self.variables)}",
                task,
                path,
            )

    def task(self, task: TaskDefinition) -> None:
        """Every check of one task, in the order its fields read."""
        self._handler(task)
        self._hook(task)
        self._settings(task)
        self._templates(task)
        self.transitions(task)

    def _handler(self, task: TaskDefinition) -> None:
        handler = task.handler
        if handler not in self.handlers:
            self.add(
                f"unknown handler {handler!r}{did_you_mean(handler, self.handlers)}",
                task,
                "handler",
            )
        if handler == "condition_key" and not task.valid_conditions:
            self.add("condition_key tasks need valid_conditions", task, "valid_conditions")
        elif task.valid_conditions and handler != "condition_key":
            self.add(
                f"valid_conditions is ignored by handler {handler!r}",
                task,
                "valid_conditions",
                "warning",
            )

    def _hook(self, task: TaskDefinition) -> None:
        handler = task.handler
        if handler == "hook":
            if task.hook is None:
                self.add("hook tasks need a hook (name, tool_name, args)", task, "hook")
            elif not task.hook.name.strip():
                self.add("is required", task, "hook.name")
        elif task.hook is not None and handler in self.handlers:
            self.add(f"hook must be omitted for handler {handler!r}", task, "hook")
        if task.output_template and handler != "hook":
            self.add(
                "output_template only applies to hook tasks", task, "output_template", "warning"
            )
        if handler in PROMPT_HANDLERS and not task.prompt_template:
            self.add(
                "no prompt_template: the task input is sent as the prompt",
                task,
                "prompt_template",
                "info",
            )

    def _settings(self, task: TaskDefinition) -> None:
        """Timeout, input variable, compose and temperature."""
        if task.timeout:
            self._duration(task.timeout, task, "timeout")
        if task.input_var and task.input_var not in self.variables:
            self.add(
                f"unknown variable {task.input_var!r}{did_you_mean(task.input_var, self.variables)}",
                task,
                "input_var",
            )
        if task.compose is not None:
            self._compose(task, task.compose.strategy, task.compose.with_var)
        temperature = task.execute_config.temperature if task.execute_config is not None else None
        if temperature is not None and not 0 <= temperature <= 2:
            self.add(
                "temperature is usually between 0 and 2",
                task,
                "execute_config.temperature",
                "warning",
            )

    def _compose(self, task: TaskDefinition, strategy: str, with_var: str) -> None:
        if strategy and strategy not in COMPOSE_STRATEGIES:
            self.add(
                f"unknown strategy {strategy!r}; use one of {', '.join(COMPOSE_STRATEGIES)}",
                task,
                "compose.strategy",
            )
        if not with_var:
            self.add("is required", task, "compose.with_var")
        elif with_var not in self.variables:
            self.add(f"unknown variable {with_var!r}", task, "compose.with_var")

    def _templates(self, task: TaskDefinition) -> None:
        self._template(task.prompt_template, task, "prompt_template")
        self._template(task.system_instruction, task, "system_instruction")
        self._template(task.print, task, "print")
        self._template(task.output_template, task, "output_template", check_names=False)
        if task.hook is not None:
            for key, value in task.hook.args.items():
                self._template(value, task, f"hook.args.{key}")

    def transitions(self, task: TaskDefinition) -> None:
        tr = task.transition
        if tr.on_failure and tr.on_failure != TERM_END and tr.on_failure not in self.ids:
            self.add(
                f"unknown task {tr.on_failure!r}{did_you_mean(tr.on_failure, self.ids)}",
                task,
                "transition.on_failure",
            )
        if not tr.branches:
            self.add(
                "no branches: the chain ends after this task", task, "transition.branches", "info"
            )
        defaults = 0
        for i, br in enumerate(tr.branches):
            path = f"transition.branches[{i}]"
            defaults += self._branch(task, br, path)
            if br.goto and br.goto != TERM_END and br.goto not in self.ids:
                self.add(
                    f"unknown task {br.goto!r}{did_you_mean(br.goto, self.ids)}",
                    task,
                    f"{path}.goto",
                )
        if defaults > 1:
            self.add(
                "more than one default branch; only the first is used",
                task,
                "transition.branches",
                "warning",
            )

    def _branch(self, task: TaskDefinition, br: TransitionBranch, path: str) -> int:
        """Check a branch's operator and value; 1 when it is a default branch."""
        op = br.operator or "equals"
        if op not in OPERATORS:
            self.add(
                f"unknown operator {br.operator!r}{did_you_mean(br.operator, OPERATORS)}; "
                f"supported: {', '.join(OPERATORS)}",
                task,
                f"{path}.operator",
            )
        elif op == "default":
            return 1
        elif op == "in_range" and parse_range_bounds(br.when) is None:
            self.add(f"in_range needs 'a-b' with a <= b, got {br.when!r}", task, f"{path}.when")
        elif op in _NUMERIC_OPS and first_number(br.when) is None:
            self.add(f"operator {op!r} needs a number, got {br.when!r}", task, f"{path}.when")
        elif task.handler == "condition_key" and op == "equals" and br.when not in _BOOLS:
            self._condition_key_branch(task, br, path)
        return 0

    def _condition_key_branch(self, task: TaskDefinition, br: TransitionBranch, path: str) -> None:
        hint = (
            f"; the reply {br.when!r} maps to "
            f"{'true' if task.valid_conditions[br.when] else 'false'}"
            if task.valid_conditions and br.when in task.valid_conditions
            else ""
        )
        self.add(
            f'condition_key compares branches with "true" or "false" (the value in '
            f"valid_conditions), so {br.when!r} can never match{hint}",
            task,
            f"{path}.when",
            "warning",
        )

    def reachability(self) -> None:
        for task in unreachable_tasks(self.chain):
            self.add("unreachable: no branch or on_failure leads here", task, severity="warning")

    def closed_cycles(self) -> None:
        """Warn about loops no branch can leave: the run would only stop at max_steps."""
        tasks = {t.id: t for t in self.chain.tasks if t.id}
        for group in closed_loops(self.chain):
            where = f"{group[0]!r} back to itself" if len(group) == 1 else ", ".join(group)
            self.add(
                f"loop through {where} has no way out: every branch stays in it, so a run "
                f"only stops at max_steps ({self.chain.max_steps})",
                tasks[group[0]],
                "transition.branches",
                "warning",
            )


def lint_chain(
    chain: TaskChainDefinition, *, extra_handlers: Iterable[str] = ()
) -> list[LintProblem]:
    """Every problem in `chain`, errors and warnings, in definition order.

    Handlers known besides the built-in ones: `extra_handlers` and every handler registered
    process-wide with `taskengine.handlers.register_handler`.
    """
    return _Linter(chain, known_handlers(extra_handlers)).run()


def known_handlers(extra_handlers: Iterable[str] = ()) -> frozenset[str]:
    """The built-in handler names, `extra_handlers`, and the process-wide registered ones."""
    from taskengine.handlers.registry import default_registry

    return BUILTIN_HANDLERS | frozenset(extra_handlers) | frozenset(default_registry)


def lint_partial(
    raw: Mapping[str, Any], chain_id: str | None, *, extra_handlers: Iterable[str] = ()
) -> list[LintProblem]:
    """Lint the tasks of a chain that failed schema validation, so every problem shows at once.

    A task that fails the schema is linted without its offending keys (an unknown key, a value
    of the wrong type), and lint problems about those keys are left to the schema's report.
    When every task could be read, the graph checks (reachability, closed cycles) run too.
    """
    listed = raw.get("tasks")
    raw_tasks: list[Any] = listed if isinstance(listed, list) else []
    ids = [str(t["id"]) for t in raw_tasks if isinstance(t, Mapping) and t.get("id") is not None]
    tasks: list[TaskDefinition] = []
    dropped: dict[int, set[str]] = {}
    for item in raw_tasks:
        task, bad_keys = _salvage_task(item)
        if task is not None:
            dropped[id(task)] = bad_keys
            tasks.append(task)
    if not tasks:
        return []
    limit = raw.get("token_limit")
    chain = TaskChainDefinition.model_construct(
        id=chain_id or "",
        tasks=tasks,
        token_limit=limit if isinstance(limit, int) else 0,
        retry_policy=None,
        max_steps=1000,
        debug=False,
        description="",
    )
    linter = _Linter(chain, known_handlers(extra_handlers), known_ids=ids)
    for task in tasks:
        before = len(linter.problems)
        linter.task(task)
        bad = dropped[id(task)]
        if bad:
            fresh = linter.problems[before:]
            del linter.problems[before:]
            linter.problems.extend(p for p in fresh if _top_key(p.path) not in bad)
    if len(tasks) == len(raw_tasks):
        linter.reachability()
        linter.closed_cycles()
    return linter.problems


def _salvage_task(item: Any) -> tuple[TaskDefinition | None, set[str]]:
    """`item` as a task, dropping the top-level keys the schema rejects (at most a few rounds)."""
    from pydantic import ValidationError

    if not isinstance(item, Mapping):
        return None, set()
    data = dict(item)
    bad: set[str] = set()
    for _ in range(3):
        try:
            return TaskDefinition.model_validate(data), bad
        except ValidationError as exc:
            keys = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            keys -= {"id", "handler"}  # without these the task means nothing
            if not keys or not keys & data.keys():
                return None, bad
            bad |= keys
            for key in keys:
                data.pop(key, None)
    return None, bad


def _top_key(path: str | None) -> str:
    return (path or "").split(".", 1)[0].split("[", 1)[0]
