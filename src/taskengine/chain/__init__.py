"""Chain definitions: the model, loading (path, text or dict), lint and Mermaid flowcharts.

`load_chain()` reads YAML or JSON (a path, a text, or a dict), validates every field, runs the
linter, and returns an immutable `TaskChainDefinition`. Every problem found is reported at
once in a `ChainValidationError`, each naming the chain, the task and the field path.

- `taskengine.chain.model`: the definition's types and their JSON Schema
- `taskengine.chain.duration`: `Duration` (every duration field), `Seconds`, `parse_duration`
- `taskengine.chain.loading`: reading a file, a text or a dict; `lint_once`
- `taskengine.chain.lint`: checks beyond the schema (`taskengine.chain.flow`: graph checks)
- `taskengine.chain.mermaid`: `to_mermaid`
"""

from __future__ import annotations

from taskengine.chain.duration import Duration, Seconds, parse_duration
from taskengine.chain.lint import (
    BUILTIN_HANDLERS,
    LLM_HANDLERS,
    PROMPT_HANDLERS,
    lint_chain,
    lint_partial,
)
from taskengine.chain.loading import (
    lint_once,
    load_chain,
    load_chain_dict,
    load_chain_file,
    load_chain_text,
    parse_chain,
    parse_chain_dict,
    parse_chain_file,
    parse_chain_text,
    passed_lint,
)
from taskengine.chain.mermaid import to_mermaid
from taskengine.chain.model import (
    TERM_END,
    ChainDefinition,
    ChainTerms,
    ComposeTask,
    HookCall,
    LLMExecutionConfig,
    RetryPolicy,
    TaskChainDefinition,
    TaskDefinition,
    TaskHandler,
    TaskTransition,
    TransitionBranch,
    chain_json_schema,
)

__all__ = [
    "BUILTIN_HANDLERS",
    "LLM_HANDLERS",
    "PROMPT_HANDLERS",
    "TERM_END",
    "ChainDefinition",
    "ChainTerms",
    "ComposeTask",
    "Duration",
    "HookCall",
    "LLMExecutionConfig",
    "RetryPolicy",
    "Seconds",
    "TaskChainDefinition",
    "TaskDefinition",
    "TaskHandler",
    "TaskTransition",
    "TransitionBranch",
    "chain_json_schema",
    "lint_chain",
    "lint_once",
    "lint_partial",
    "load_chain",
    "load_chain_dict",
    "load_chain_file",
    "load_chain_text",
    "parse_chain",
    "parse_chain_dict",
    "parse_chain_file",
    "parse_chain_text",
    "parse_duration",
    "passed_lint",
    "to_mermaid",
]
