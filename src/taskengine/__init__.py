"""taskengine: declarative LLM task chains with typed parse-and-branch and durable runs.

The public API is re-exported here and loaded lazily on first use, so `import taskengine`
stays cheap; everything not listed in `__all__` may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # running chains
    "RunResult": "taskengine.engine.results",
    "SimpleEnv": "taskengine.engine",
    "run": "taskengine.api",
    "run_sync": "taskengine.api",
    # chain definitions
    "ChainDefinition": "taskengine.chain",
    "ComposeTask": "taskengine.chain",
    "HookCall": "taskengine.chain",
    "LLMExecutionConfig": "taskengine.chain",
    "RetryPolicy": "taskengine.chain",
    "TERM_END": "taskengine.chain",
    "TaskChainDefinition": "taskengine.chain",
    "TaskDefinition": "taskengine.chain",
    "TaskTransition": "taskengine.chain",
    "ChainTerms": "taskengine.chain",
    "TaskHandler": "taskengine.chain",
    "TransitionBranch": "taskengine.chain",
    "chain_json_schema": "taskengine.chain",
    "lint_chain": "taskengine.chain.lint",
    "load_chain": "taskengine.chain",
    "to_mermaid": "taskengine.chain.mermaid",
    # data types
    "ChatHistory": "taskengine.datatypes",
    "DataType": "taskengine.datatypes",
    "FunctionCall": "taskengine.datatypes",
    "FunctionCallObject": "taskengine.datatypes",
    "FunctionTool": "taskengine.datatypes",
    "Message": "taskengine.datatypes",
    "OpenAIChatRequest": "taskengine.datatypes",
    "OpenAIChatRequestMessage": "taskengine.datatypes",
    "OpenAIChatResponse": "taskengine.datatypes",
    "OpenAIChatResponseChoice": "taskengine.datatypes",
    "OpenAIChatResponseMessage": "taskengine.datatypes",
    "OpenAITokenUsage": "taskengine.datatypes",
    "SearchResult": "taskengine.datatypes",
    "Tool": "taskengine.datatypes",
    "ToolCall": "taskengine.datatypes",
    "convert_chat_history_to_openai": "taskengine.datatypes",
    "convert_chat_history_to_openai_request": "taskengine.datatypes",
    "convert_openai_to_chat_history": "taskengine.datatypes",
    "convert_to_type": "taskengine.datatypes",
    # executing tasks
    "ExecContext": "taskengine.executor",
    "SimpleExec": "taskengine.executor",
    "TaskExecutor": "taskengine.steps",
    "TaskExecutorProtocol": "taskengine.executor",
    "ChainContext": "taskengine.executor",
    "EnvExecutor": "taskengine.engine",
    "OperatorTerm": "taskengine.transitions",
    "to_operator_term": "taskengine.transitions",
    "compare": "taskengine.transitions",
    "evaluate_transitions": "taskengine.transitions",
    "supported_operators": "taskengine.transitions",
    # observing runs
    "CapturedStateUnit": "taskengine.engine.record",
    "ErrorResponse": "taskengine.engine.record",
    "ExecutionState": "taskengine.engine.record",
    "Inspector": "taskengine.engine.record",
    "LLMCall": "taskengine.engine.events",
    "RunInfo": "taskengine.engine.events",
    "RunObserver": "taskengine.engine.events",
    "SimpleInspector": "taskengine.engine.record",
    "SimpleStackTrace": "taskengine.engine.record",
    "StackTrace": "taskengine.engine.record",
    # step-style tasks (seed 000)
    "StepResult": "taskengine.step_defs",
    "TaskStep": "taskengine.step_defs",
    # models and providers
    "ChatResult": "taskengine.providers.base",
    "EmbedResult": "taskengine.providers.base",
    "ModelProvider": "taskengine.providers.base",
    "ModelResolver": "taskengine.providers.resolver",
    "ProviderConfig": "taskengine.providers.config",
    "ProviderRegistry": "taskengine.providers.registry",
    # durable runs
    "RunRecord": "taskengine.store.base",
    "RunState": "taskengine.store.base",
    "RunStore": "taskengine.store.base",
    "default_db_url": "taskengine.store.base",
    "open_store": "taskengine.store",
    # activity and KV
    "ActivityObserver": "taskengine.activity",
    "ActivityTracker": "taskengine.activity",
    "KVActivitySink": "taskengine.activity",
    "KVStore": "taskengine.kv.base",
    "NoopTracker": "taskengine.activity",
    "Operation": "taskengine.activity",
    "TrackedEvent": "taskengine.activity",
    "TrackedRequest": "taskengine.activity",
    "open_kv": "taskengine.kv.base",
    # configuration, secrets, logging, metrics
    "CostObserver": "taskengine.metrics",
    "JsonFormatter": "taskengine.logs",
    "MetricsObserver": "taskengine.metrics",
    "MetricsSink": "taskengine.metrics",
    "PriceTable": "taskengine.metrics",
    "PrometheusMetrics": "taskengine.metrics",
    "Runtime": "taskengine.runtime",
    "SecretStore": "taskengine.store.secret_store",
    "Settings": "taskengine.config",
    "generate_key": "taskengine.store.secret_store",
    "load_settings": "taskengine.config",
    "open_runtime": "taskengine.runtime",
    "setup_logging": "taskengine.logs",
    # hooks
    "BuiltinHooks": "taskengine.hooks.builtin",
    "HookOutput": "taskengine.hooks.base",
    "HookProvider": "taskengine.hooks.base",
    "HooksWithSchema": "taskengine.hooks.base",
    "ToolWithResolution": "taskengine.hooks.base",
    "RemoteHook": "taskengine.hooks.remote",
    "RemoteHookRepo": "taskengine.hooks.remote",
    "default_local_hooks": "taskengine.hooks.local",
    "tools_for_task": "taskengine.hooks.base",
    # server
    "create_app": "taskengine.server.app",
    # errors
    "ConflictError": "taskengine.errors",
    "NotFoundError": "taskengine.errors",
    "HookContext": "taskengine.hooks.base",
    "HookRegistry": "taskengine.hooks.composite",
    "HookRepo": "taskengine.hooks.base",
    "LocalHookRegistry": "taskengine.hooks.local",
    "hook": "taskengine.hooks.local",
    # errors
    "ChainLoadError": "taskengine.errors",
    "ChainValidationError": "taskengine.errors",
    "ConfigError": "taskengine.errors",
    "DataConversionError": "taskengine.errors",
    "DefinitionError": "taskengine.errors",
    "HookError": "taskengine.errors",
    "LLMError": "taskengine.errors",
    "LintProblem": "taskengine.errors",
    "MaxStepsExceededError": "taskengine.errors",
    "NoBranchMatchError": "taskengine.errors",
    "ParseError": "taskengine.errors",
    "ProviderNotConfiguredError": "taskengine.errors",
    "ProviderRequestError": "taskengine.errors",
    "ProviderUnavailableError": "taskengine.errors",
    "RaisedError": "taskengine.errors",
    "RunCancelledError": "taskengine.errors",
    "RunLeaseError": "taskengine.errors",
    "RunNotFoundError": "taskengine.errors",
    "SecretError": "taskengine.errors",
    "StepValidationError": "taskengine.errors",
    "StoreError": "taskengine.errors",
    "TaskEngineError": "taskengine.errors",
    "TaskExecutionError": "taskengine.errors",
    "TaskTimeoutError": "taskengine.errors",
    "TemplateError": "taskengine.errors",
    "TokenLimitError": "taskengine.errors",
    "UnknownHookError": "taskengine.errors",
    "UnsupportedTaskTypeError": "taskengine.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'taskengine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from taskengine.api import run, run_sync
    from taskengine.chain import (
        TERM_END,
        ChainDefinition,
        ComposeTask,
        HookCall,
        LLMExecutionConfig,
        RetryPolicy,
        TaskChainDefinition,
        TaskDefinition,
        TaskTransition,
        TransitionBranch,
        chain_json_schema,
        load_chain,
    )
    from taskengine.chain.lint import lint_chain
    from taskengine.chain.mermaid import to_mermaid
    from taskengine.datatypes import (
        ChatHistory,
        DataType,
        FunctionCall,
        FunctionCallObject,
        FunctionTool,
        Message,
        OpenAIChatRequest,
        OpenAIChatRequestMessage,
        OpenAIChatResponse,
        OpenAIChatResponseChoice,
        OpenAIChatResponseMessage,
        OpenAITokenUsage,
        SearchResult,
        Tool,
        ToolCall,
        convert_chat_history_to_openai,
        convert_chat_history_to_openai_request,
        convert_openai_to_chat_history,
        convert_to_type,
    )
    from taskengine.engine import SimpleEnv
    from taskengine.engine.events import LLMCall, RunInfo, RunObserver
    from taskengine.engine.record import (
        CapturedStateUnit,
        ExecutionState,
        Inspector,
        SimpleInspector,
        SimpleStackTrace,
        StackTrace,
    )
    from taskengine.engine.results import RunResult
    from taskengine.errors import *  # noqa: F403
    from taskengine.executor import ExecContext, SimpleExec, TaskExecutorProtocol
    from taskengine.hooks.base import HookContext, HookRepo
    from taskengine.hooks.composite import HookRegistry
    from taskengine.hooks.local import LocalHookRegistry, hook
    from taskengine.steps import TaskExecutor
    from taskengine.transitions import compare, evaluate_transitions, supported_operators
