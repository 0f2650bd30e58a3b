"""The built-in handlers by name, each a coroutine `(executor, ctx, task, input, input_type)`.

`SimpleExec` binds them to itself (the executor gives them its `resolver` and `hooks`).
"""

from __future__ import annotations

from taskengine.handlers.chat import model_execution_handler
from taskengine.handlers.data import (
    embedding_handler,
    noop_handler,
    raise_error_handler,
    to_openai_response_handler,
)
from taskengine.handlers.hook import hook_handler
from taskengine.handlers.prompt import (
    condition_key_handler,
    parse_key_value_handler,
    parse_number_handler,
    parse_range_handler,
    parse_score_handler,
    parse_transition_handler,
    raw_string_handler,
)
from taskengine.handlers.registry import BUILTIN_HANDLER_NAMES
from taskengine.handlers.tools import execute_tool_calls_handler

__all__ = ["BUILTIN_HANDLERS", "FAILED_TRANSITIONS"]

BUILTIN_HANDLERS = {
    "noop": noop_handler,
    "raise_error": raise_error_handler,
    "parse_transition": parse_transition_handler,
    "parse_key_value": parse_key_value_handler,
    "convert_to_openai_chat_response": to_openai_response_handler,
    "hook": hook_handler,
    "condition_key": condition_key_handler,
    "parse_number": parse_number_handler,
    "parse_score": parse_score_handler,
    "parse_range": parse_range_handler,
    "raw_string": raw_string_handler,
    "embedding": embedding_handler,
    "model_execution": model_execution_handler,
    "execute_tool_calls": execute_tool_calls_handler,
}
assert set(BUILTIN_HANDLERS) == BUILTIN_HANDLER_NAMES

#: The transition value the Go engine records when a handler fails (others record "").
FAILED_TRANSITIONS = {
    "condition_key": "false",
    "parse_number": "0",
    "parse_score": "0.00",
    "embedding": "ok",
    "hook": "failed",
}
