"""One rooted exception tree for everything a user can cause or catch.

```
TaskEngineError                      every error a user can catch
├── DefinitionError                  a chain that cannot run as written
│   ├── ChainLoadError               malformed YAML/JSON, unreadable file
│   └── ChainValidationError         schema or lint problems (all of them, at once)
├── TemplateError                    a template that does not parse or names a missing variable
├── DataConversionError              a value that cannot become the requested DataType
├── ConfigError                      a bad settings file or environment override
├── SecretError                      wrong master key, missing secret, unreadable key file
├── StoreError                       run store / KV problems (corrupt or foreign database …)
│   ├── NotFoundError                a stored run, chain or remote hook that does not exist
│   │   └── RunNotFoundError
│   └── ConflictError                a duplicate id or name, or a resource held by someone else
│       └── RunLeaseError            somebody else is already resuming this run
├── HookError                        a hook that rejects its args or fails
│   └── UnknownHookError             (also a DefinitionError) a chain names a hook nobody serves
├── LLMError                         provider failures (carry provider, model, status, body)
│   ├── ProviderNotConfiguredError
│   ├── ProviderUnavailableError     connection errors, 5xx, 429, timeouts: worth a fallback
│   └── ProviderRequestError         4xx caused by the request: not worth a fallback
└── TaskExecutionError               a step that failed while a run was going
    ├── StepValidationError          required_info missing, a reply that fails its schema
    ├── ParseError                   a reply a parse handler cannot read
    ├── TaskTimeoutError
    ├── RaisedError                  the raise_error handler
    ├── TokenLimitError
    ├── MaxStepsExceededError        a runaway loop
    ├── NoBranchMatchError           no transition branch matches, no default
    ├── RunCancelledError
    └── UnsupportedTaskTypeError
```

Every error can carry where it happened (`chain_id`, `task_id`, `run_id`, `field`); the
engine fills in what it knows as the error passes through it, so messages name the place.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ChainLoadError",
    "ChainValidationError",
    "ConfigError",
    "ConflictError",
    "DataConversionError",
    "DefinitionError",
    "HookError",
    "LLMError",
    "LintProblem",
    "MaxStepsExceededError",
    "NoBranchMatchError",
    "NotFoundError",
    "ParseError",
    "ProviderNotConfiguredError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "RaisedError",
    "RunCancelledError",
    "RunLeaseError",
    "RunNotFoundError",
    "SecretError",
    "StepValidationError",
    "StoreError",
    "TaskEngineError",
    "TaskExecutionError",
    "TaskTimeoutError",
    "TemplateError",
    "TokenLimitError",
    "UnknownHookError",
    "UnsupportedTaskTypeError",
    "as_engine_error",
]


class TaskEngineError(Exception):
    """Root of every error a user can cause; knows where it happened."""

    #: Short machine-readable kind, used by the HTTP server's error body.
    code: str = "taskengine_error"
    #: The failed run's RunResult (status "failed", the steps that ran), when a run failed.
    run_result: Any = None
    #: Whether retrying the same step could succeed; False skips retry_on_failure's attempts.
    retryable: bool = True
    #: The transition value a failed step records (the Go engine's, per handler); "": none.
    transition: str = ""

    def __init__(
        self,
        message: str,
        *,
        chain_id: str | None = None,
        task_id: str | None = None,
        run_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.chain_id = chain_id
        self.task_id = task_id
        self.run_id = run_id
        self.field = field

    def with_context(self, **where: str | None) -> TaskEngineError:
        """Fill in location fields that are still unknown; returns self for `raise`."""
        for key, value in where.items():
            if value is not None and getattr(self, key, None) is None:
                setattr(self, key, value)
        return self

    @property
    def location(self) -> str:
        parts = []
        if self.chain_id:
            parts.append(f"chain {self.chain_id!r}")
        if self.task_id:
            parts.append(f"task {self.task_id!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        from taskengine.bounds import clip_message

        where = self.location
        return clip_message(f"{where}: {self.message}" if where else self.message)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (what the server and `--json` report)."""
        from taskengine.bounds import clip_message

        out: dict[str, Any] = {"message": str(self), "type": type(self).__name__, "code": self.code}
        for key in ("chain_id", "task_id", "run_id", "field"):
            value = getattr(self, key)
            if value is not None:
                out[key] = clip_message(value) if isinstance(value, str) else value
        return out


# --- definitions -------------------------------------------------------------------------


class DefinitionError(TaskEngineError):
    """A chain that cannot run as written."""

    code = "invalid_chain"
    retryable = False


class HandlerRegistrationError(DefinitionError, ValueError):
    """A handler could not be registered: bad name, not callable, or the name is taken."""


class ChainLoadError(DefinitionError):
    """The chain source could not be read or parsed (YAML/JSON syntax, missing file)."""


class LintProblem:
    """One problem found in a chain: where (chain, task, field path) and what."""

    __slots__ = ("chain_id", "message", "path", "severity", "task_id")

    def __init__(
        self,
        message: str,
        *,
        chain_id: str | None = None,
        task_id: str | None = None,
        path: str | None = None,
        severity: str = "error",
    ) -> None:
        self.message = message
        self.chain_id = chain_id
        self.task_id = task_id
        self.path = path
        self.severity = severity

    def __str__(self) -> str:
        from taskengine.bounds import clip_message

        return clip_message(self._text())

    def _text(self) -> str:
        where = []
        if self.chain_id:
            where.append(f"chain {self.chain_id!r}")
        if self.task_id:
            where.append(f"task {self.task_id!r}")
        if self.path:
            where.append(self.path)
        prefix = ", ".join(where)
        return (
            f"{self.severity}: {prefix}: {self.message}"
            if prefix
            else f"{self.severity}: {self.message}"
        )

    def __repr__(self) -> str:
        return f"LintProblem({self!s})"

    def to_dict(self) -> dict[str, Any]:
        from taskengine.bounds import clip_message

        def clip(value: str | None) -> str | None:
            return clip_message(value) if value else value

        return {
            "severity": self.severity,
            "chain_id": clip(self.chain_id),
            "task_id": clip(self.task_id),
            "path": clip(self.path),
            "message": clip(self.message),
        }


class ChainValidationError(DefinitionError):
    """Every problem found in a chain, reported together."""

    def __init__(self, problems: list[LintProblem], *, chain_id: str | None = None) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        first = errors[0] if errors else (self.problems[0] if self.problems else None)
        count = len(errors)
        summary = f"{count} problem{'s' if count != 1 else ''} in chain"
        detail = "; ".join(str(p) for p in errors) if errors else "invalid chain"
        super().__init__(
            f"{summary}: {detail}",
            chain_id=chain_id,
            task_id=first.task_id if first else None,
            field=first.path if first else None,
        )

    def __str__(self) -> str:
        from taskengine.bounds import clip_message

        return clip_message(self.message)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["problems"] = [p.to_dict() for p in self.problems]
        return out


class TemplateError(TaskEngineError):
    """A template that does not parse, or refers to a variable that does not exist."""

    code = "template_error"
    retryable = False


class DataConversionError(TaskEngineError):
    """A value that cannot be converted to the requested DataType."""

    code = "invalid_input"
    retryable = False


class ConfigError(TaskEngineError):
    """A settings file or environment override that does not validate."""

    code = "config_error"
    retryable = False

    def __init__(
        self, message: str, *, file: str | None = None, key_path: str | None = None
    ) -> None:
        self.file = file
        self.key_path = key_path
        where = []
        if file:
            where.append(str(file))
        if key_path:
            where.append(key_path)
        super().__init__(f"{': '.join(where)}: {message}" if where else message, field=key_path)


class SecretError(TaskEngineError):
    """The secret store cannot do what was asked (wrong key, missing secret …)."""

    code = "secret_error"
    retryable = False


class StoreError(TaskEngineError):
    """The run store or KV backend failed, or its database is not ours."""

    code = "store_error"


class NotFoundError(StoreError):
    """A stored run, chain or remote hook that does not exist (HTTP 404)."""

    code = "not_found"


class RunNotFoundError(NotFoundError):
    code = "not_found"


class ConflictError(StoreError):
    """A duplicate id or name, or a resource somebody else holds (HTTP 409)."""

    code = "conflict"


class RunLeaseError(ConflictError):
    """Another process holds the lease on this run (it is already being resumed)."""

    code = "conflict"


class HookError(TaskEngineError):
    """A hook that is unknown, rejects its arguments, or fails while running."""

    code = "hook_error"

    def __init__(
        self, message: str, *, hook: str | None = None, tool: str | None = None, **where: Any
    ) -> None:
        self.hook = hook
        self.tool = tool
        super().__init__(message, **where)


class UnknownHookError(HookError, DefinitionError):
    """A chain names a hook no registry serves: a definition problem, found before any step."""

    code = "unknown_hook"
    retryable = False


# --- providers ---------------------------------------------------------------------------


class LLMError(TaskEngineError):
    """A model provider failed; carries provider, model, HTTP status and a body excerpt."""

    code = "llm_error"
    #: seconds the provider asked to wait (its `Retry-After`), when it said so
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        body: str | None = None,
        **where: Any,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.body = _excerpt(body) if body else body
        bits = []
        if provider:
            bits.append(f"provider {provider!r}")
        if model:
            bits.append(f"model {model!r}")
        if status_code is not None:
            bits.append(f"HTTP {status_code}")
        prefix = f"[{', '.join(bits)}] " if bits else ""
        suffix = f" (body: {self.body})" if self.body else ""
        super().__init__(f"{prefix}{message}{suffix}", **where)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in ("provider", "model", "status_code"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class ProviderNotConfiguredError(LLMError):
    code = "no_provider"
    retryable = False


class ProviderUnavailableError(LLMError):
    """Connection refused, 5xx, 429 or a timeout: the resolver tries the next candidate."""

    code = "provider_unavailable"


class ProviderRequestError(LLMError):
    """A 4xx the request itself caused; another candidate would fail the same way."""

    code = "provider_request_error"
    retryable = False


# --- runs --------------------------------------------------------------------------------


class TaskExecutionError(TaskEngineError):
    """A task failed during a run."""

    code = "task_failed"


class StepValidationError(TaskExecutionError):
    """A step's input lacks required data, or its output fails its schema."""

    code = "step_validation_error"

    def __init__(self, message: str, *, missing: list[str] | None = None, **where: Any) -> None:
        self.missing = list(missing or [])
        super().__init__(message, **where)
        # Missing input stays missing on a retry; a reply that failed validation may not.
        self.retryable = not self.missing


class ParseError(TaskExecutionError):
    """A reply a parse handler could not interpret (not a number, not a valid condition …)."""

    code = "parse_error"


class TaskTimeoutError(TaskExecutionError):
    code = "timeout"


class RaisedError(TaskExecutionError):
    """Raised on purpose by a `raise_error` task."""

    code = "raised"


class TokenLimitError(TaskExecutionError):
    code = "token_limit"
    retryable = False


class MaxStepsExceededError(TaskExecutionError):
    code = "max_steps"
    retryable = False


class NoBranchMatchError(TaskExecutionError):
    """No transition branch matches a task's result and the task has no default branch."""

    code = "no_branch"
    retryable = False


class RunCancelledError(TaskExecutionError):
    code = "cancelled"
    retryable = False


class UnsupportedTaskTypeError(TaskExecutionError):
    """The executor does not support the task's handler (Go: ErrUnsupportedTaskType)."""

    code = "unsupported_task_type"
    retryable = False


def as_engine_error(raw: BaseException) -> TaskEngineError:
    """`raw` itself when it is ours, else a TaskExecutionError that names it (the cause kept)."""
    if isinstance(raw, TaskEngineError):
        return raw
    exc = TaskExecutionError(f"{type(raw).__name__}: {raw}")
    exc.__cause__ = raw
    return exc


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
