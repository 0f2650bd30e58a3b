"""How long to wait before retrying a failed step: exponential backoff, a provider's `Retry-After`."""

from __future__ import annotations

import random

from taskengine.chain import TaskChainDefinition, parse_duration
from taskengine.engine.plan import Step
from taskengine.errors import TaskEngineError

__all__ = ["retry_delay"]


def retry_delay(
    attempt: int,
    error: TaskEngineError,
    step: Step,
    chain: TaskChainDefinition,
    base: float,
    cap: float,
) -> float:
    """Seconds to wait after failed attempt `attempt` (the chain's `retry_policy` wins)."""
    return _honour_retry_after(_backoff(attempt, chain, base, cap), error, step)


def _backoff(attempt: int, chain: TaskChainDefinition, base: float, cap: float) -> float:
    """Exponential backoff from `base` up to `cap`, with full jitter unless the policy says not."""
    jitter = True
    policy = chain.retry_policy
    if policy is not None:
        base, cap, jitter = (
            parse_duration(policy.base),
            parse_duration(policy.max),
            policy.jitter,
        )
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return random.uniform(0, ceiling) if jitter else ceiling


def _honour_retry_after(delay: float, error: TaskEngineError, step: Step) -> float:
    """At least the provider's `Retry-After` (capped by the task's timeout) before a retry."""
    asked: float | None = getattr(error, "retry_after", None)
    if not asked:
        return delay
    if step.timeout is not None:
        asked = min(asked, step.timeout)
    return max(delay, asked)
