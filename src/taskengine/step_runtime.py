"""The I/O a step-style `TaskExecutor` needs: its run store, its model resolver, retried model calls.

Resources open per `execute()` (or once per `async with executor:`); the resolver is built from
settings only when a step first asks the model, so steps that never do need no provider.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from taskengine.errors import LLMError, ProviderUnavailableError, TaskEngineError

__all__ = ["StepResources", "prompt_with_retries"]

logger = logging.getLogger("taskengine.steps")


class StepResources:
    """The run store and model resolver one `execute()` (or one `async with`) uses; closes what it opened."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.store: Any = None
        self.resolver: Any = owner._resolver
        self.settings: Any = owner._settings
        self._closers: list[Any] = []
        self._lock = asyncio.Lock()

    async def open(self) -> StepResources:
        wanted = self.owner._store_arg
        if wanted is False or wanted is None:
            return self
        if not isinstance(wanted, (bool, str)):
            self.store = wanted  # the caller's store: the caller closes it
            return self
        from taskengine.store import open_store

        url = wanted if isinstance(wanted, str) else (await self.get_settings()).db
        self.store = await open_store(url) if url else await open_store()
        self._closers.append(self.store.aclose)
        return self

    async def get_settings(self) -> Any:
        if self.settings is None:
            from taskengine.config import aload_settings

            self.settings = await aload_settings()
        return self.settings

    async def get_resolver(self) -> Any:
        """The injected resolver, else one built from settings on first use (providers pool per resources)."""
        if self.resolver is not None:
            return self.resolver
        async with self._lock:
            if self.resolver is None:
                from taskengine.runtime import open_runtime

                runtime = await open_runtime(await self.get_settings(), use_store=False)
                self._closers.append(runtime.aclose)
                self.resolver = runtime.resolver
        return self.resolver

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                await close()
            except Exception:  # closing must not hide the run's own outcome
                logger.exception("could not close a step executor resource")


async def prompt_with_retries(
    resolver: Any,
    config: Any,
    prompt: str,
    *,
    system: str,
    temperature: float | None,
    on_delta: Any,
    timeout: float | None,
    retries: int,
    retry_base: float,
    retry_max: float,
    task_id: str | None,
    run_id: str | None,
) -> tuple[Any, int]:
    """`resolver.prompt(...)`, retrying transient failures with full-jitter exponential backoff.

    Returns the `ChatResult` and the number of attempts. Only `ProviderUnavailableError`
    (connection errors, timeouts, 5xx, 429) is retried; other errors carry step and run id.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await resolver.prompt(
                config,
                prompt,
                system_instruction=system,
                temperature=temperature,
                on_delta=on_delta,
                timeout=timeout,
            )
            return result, attempt
        except ProviderUnavailableError as exc:
            if attempt > retries:
                exc.with_context(task_id=task_id, run_id=run_id)
                raise
            delay = random.uniform(0, min(retry_max, retry_base * 2 ** (attempt - 1)))
            logger.warning(
                "llm_call in step %s failed (%s); retry %d of %d in %.2fs",
                task_id,
                exc.message,
                attempt,
                retries,
                delay,
            )
            await asyncio.sleep(delay)
        except TaskEngineError as exc:
            exc.with_context(task_id=task_id, run_id=run_id)
            raise
        except Exception as exc:  # a resolver raises LLMError; translate anything else
            raise LLMError(f"{type(exc).__name__}: {exc}", task_id=task_id, run_id=run_id) from exc
