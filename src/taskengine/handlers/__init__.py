"""Task handlers: the public handler protocol, the registry users add handlers to, and the
built-in handlers by family (`prompt`: prompt and parse, `chat` and `tools`: chat with tools,
`data`: no model or embeddings, `hook`: hook calls).

Add a handler without subclassing::

    from taskengine.handlers import register_handler

    @register_handler("shout")
    async def shout(ctx, task, input, input_type):
        return str(input).upper(), DataType.STRING, "ok"
"""

from __future__ import annotations

from taskengine.handlers.context import ChainContext, ExecContext, get_prompt
from taskengine.handlers.registry import (
    BUILTIN_HANDLER_NAMES,
    Handler,
    HandlerRegistrationError,
    HandlerRegistry,
    TaskHandler,
    default_registry,
    register_handler,
    unregister_handler,
)

__all__ = [
    "BUILTIN_HANDLER_NAMES",
    "ChainContext",
    "ExecContext",
    "Handler",
    "HandlerRegistrationError",
    "HandlerRegistry",
    "TaskHandler",
    "default_registry",
    "get_prompt",
    "register_handler",
    "unregister_handler",
]
