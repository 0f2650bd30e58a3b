"""taskengine: declarative LLM task chains with typed parse-and-branch and durable runs.

The public API is below, grouped; each name loads lazily on first use, so `import taskengine`
stays cheap. Python names come first; the Go engine's names (`SimpleEnv`, `SimpleExec`) are
kept as aliases, since the specification and Go users know them. Names that used to be
exported here still resolve (see `_LEGACY`) but are not part of the curated API: import them
from their module (`taskengine.errors`, `taskengine.chain`, …) instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine._lazy import lazy_exports

__version__ = "0.1.0"

# name -> module that defines it: the curated public API
_EXPORTS: dict[str, str] = {
    # running chains
    "Engine": "taskengine.engine",
    "SimpleEnv": "taskengine.engine",
    "RunResult": "taskengine.engine",
    "run": "taskengine.api",
    "run_sync": "taskengine.api",
    "open_runtime": "taskengine.runtime",
    # chain definitions
    "ComposeTask": "taskengine.chain",
    "HookCall": "taskengine.chain",
    "LLMExecutionConfig": "taskengine.chain",
    "RetryPolicy": "taskengine.chain",
    "TaskChainDefinition": "taskengine.chain",
    "TaskDefinition": "taskengine.chain",
    "TaskTransition": "taskengine.chain",
    "TransitionBranch": "taskengine.chain",
    "lint_chain": "taskengine.chain",
    "load_chain": "taskengine.chain",
    "to_mermaid": "taskengine.chain",
    # data
    "ChatHistory": "taskengine.datatypes",
    "DataType": "taskengine.datatypes",
    "Message": "taskengine.datatypes",
    # handlers (how a task turns input into output)
    "ExecContext": "taskengine.handlers",
    "Executor": "taskengine.executor",
    "Handler": "taskengine.handlers",
    "HandlerRegistry": "taskengine.handlers",
    "SimpleExec": "taskengine.executor",
    "register_handler": "taskengine.handlers",
    # step-style tasks (seed 000)
    "StepResult": "taskengine.step_defs",
    "TaskExecutor": "taskengine.steps",
    "TaskStep": "taskengine.step_defs",
    # observing runs
    "CapturedStateUnit": "taskengine.engine.record",
    "LLMCall": "taskengine.engine.events",
    "RunInfo": "taskengine.engine.events",
    "RunObserver": "taskengine.engine.events",
    # models and tools
    "ModelProvider": "taskengine.providers.base",
    "ProviderConfig": "taskengine.providers.config",
    "HookContext": "taskengine.hooks.base",
    "hook": "taskengine.hooks.local",
    # durable runs, settings, server
    "RunRecord": "taskengine.store.base",
    "RunStore": "taskengine.store.base",
    "open_store": "taskengine.store",
    "Settings": "taskengine.config",
    "load_settings": "taskengine.config",
    "create_app": "taskengine.server.app",
    # errors (all of them: taskengine.errors)
    "ChainValidationError": "taskengine.errors",
    "ConfigError": "taskengine.errors",
    "DefinitionError": "taskengine.errors",
    "HookError": "taskengine.errors",
    "LLMError": "taskengine.errors",
    "NotFoundError": "taskengine.errors",
    "ParseError": "taskengine.errors",
    "StoreError": "taskengine.errors",
    "TaskEngineError": "taskengine.errors",
    "TaskExecutionError": "taskengine.errors",
    "TaskTimeoutError": "taskengine.errors",
}

# Exported before the API was curated; still resolvable, not listed in `__all__` or `dir()`.
_LEGACY_BY_MODULE: dict[str, str] = {
    "taskengine.chain": "ChainDefinition ChainTerms TERM_END TaskHandler chain_json_schema",
    "taskengine.datatypes": """FunctionCall FunctionCallObject FunctionTool OpenAIChatRequest
        OpenAIChatRequestMessage OpenAIChatResponse OpenAIChatResponseChoice
        OpenAIChatResponseMessage OpenAITokenUsage SearchResult Tool ToolCall
        convert_chat_history_to_openai convert_chat_history_to_openai_request
        convert_openai_to_chat_history convert_to_type""",
    "taskengine.handlers": "ChainContext",
    "taskengine.executor": "TaskExecutorProtocol",
    "taskengine.engine": "EnvExecutor",
    "taskengine.transitions": """OperatorTerm to_operator_term compare evaluate_transitions
        supported_operators""",
    "taskengine.engine.record": """ErrorResponse ExecutionState Inspector SimpleInspector
        SimpleStackTrace StackTrace""",
    "taskengine.providers.base": "ChatResult EmbedResult",
    "taskengine.providers.resolver": "ModelResolver",
    "taskengine.providers.registry": "ProviderRegistry",
    "taskengine.store.base": "RunState default_db_url",
    "taskengine.activity": """ActivityObserver ActivityTracker KVActivitySink NoopTracker
        Operation TrackedEvent TrackedRequest""",
    "taskengine.kv.base": "KVStore open_kv",
    "taskengine.metrics": "CostObserver MetricsObserver MetricsSink PriceTable PrometheusMetrics",
    "taskengine.logs": "JsonFormatter setup_logging",
    "taskengine.runtime": "Runtime",
    "taskengine.store.secret_store": "SecretStore generate_key",
    "taskengine.hooks.builtin": "BuiltinHooks",
    "taskengine.hooks.base": """HookOutput HookProvider HooksWithSchema ToolWithResolution
        tools_for_task HookRepo""",
    "taskengine.hooks.remote": "RemoteHook RemoteHookRepo",
    "taskengine.hooks.composite": "HookRegistry",
    "taskengine.hooks.local": "LocalHookRegistry default_local_hooks",
    "taskengine.errors": """ChainLoadError ConflictError DataConversionError
        HandlerRegistrationError LintProblem MaxStepsExceededError NoBranchMatchError
        ProviderNotConfiguredError ProviderRequestError ProviderUnavailableError RaisedError
        RunCancelledError RunLeaseError RunNotFoundError SecretError StepValidationError
        TemplateError TokenLimitError UnknownHookError UnsupportedTaskTypeError""",
}
_LEGACY = {name: module for module, names in _LEGACY_BY_MODULE.items() for name in names.split()}

__all__ = sorted([*_EXPORTS, "__version__"])

__getattr__ = lazy_exports(__name__, {**_LEGACY, **_EXPORTS})[0]


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - every curated name, visible to type checkers and IDEs
    from taskengine.api import run, run_sync
    from taskengine.chain import (
        ComposeTask,
        HookCall,
        LLMExecutionConfig,
        RetryPolicy,
        TaskChainDefinition,
        TaskDefinition,
        TaskTransition,
        TransitionBranch,
        lint_chain,
        load_chain,
        to_mermaid,
    )
    from taskengine.config import Settings, load_settings
    from taskengine.datatypes import ChatHistory, DataType, Message
    from taskengine.engine import Engine, SimpleEnv
    from taskengine.engine.events import LLMCall, RunInfo, RunObserver
    from taskengine.engine.record import CapturedStateUnit
    from taskengine.engine.results import RunResult
    from taskengine.errors import (
        ChainValidationError,
        ConfigError,
        DefinitionError,
        HookError,
        LLMError,
        NotFoundError,
        ParseError,
        StoreError,
        TaskEngineError,
        TaskExecutionError,
        TaskTimeoutError,
    )
    from taskengine.executor import Executor, SimpleExec
    from taskengine.handlers import ExecContext, Handler, HandlerRegistry, register_handler
    from taskengine.hooks.base import HookContext
    from taskengine.hooks.local import hook
    from taskengine.providers.base import ModelProvider
    from taskengine.providers.config import ProviderConfig
    from taskengine.runtime import open_runtime
    from taskengine.server.app import create_app
    from taskengine.step_defs import StepResult, TaskStep
    from taskengine.steps import TaskExecutor
    from taskengine.store import open_store
    from taskengine.store.base import RunRecord, RunStore
