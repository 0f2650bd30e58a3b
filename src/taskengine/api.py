"""One-call entry points: `await taskengine.run(chain, input)` and its sync twin `run_sync`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from taskengine.chain import TaskChainDefinition, load_chain
from taskengine.datatypes import DataType
from taskengine.engine import EventCallback, RunResult

__all__ = ["run", "run_sync"]


async def run(
    chain: TaskChainDefinition | dict[str, Any] | str | Path,
    input: Any = "",
    input_type: DataType | str = DataType.STRING,
    *,
    settings: Any = None,
    config_path: str | None = None,
    hooks: Iterable[str] = (),
    store: bool | str = False,
    breakpoints: Iterable[str] = (),
    on_event: EventCallback | None = None,
) -> RunResult:
    """Load `chain`, build providers/hooks from settings and the environment, and run it once.

    Args:
        store: False (default) keeps nothing; True records the run in the default store
            (`TASKENGINE_DB`), a URL records it there, so it can be listed and resumed.
        hooks: Python files or modules to import first (they register hooks with `@hook`).
    """
    from taskengine.runtime import open_runtime

    definition = chain if isinstance(chain, TaskChainDefinition) else load_chain(chain)
    runtime = await open_runtime(
        settings,
        config_path=config_path,
        use_store=bool(store),
        store_url=store if isinstance(store, str) else None,
        hook_modules=hooks,
    )
    async with runtime:
        return await runtime.env.exec_env(
            definition, input, input_type, breakpoints=breakpoints, on_event=on_event
        )


def run_sync(*args: Any, **kwargs: Any) -> RunResult:
    """`run()` for code without an event loop."""
    return asyncio.run(run(*args, **kwargs))
