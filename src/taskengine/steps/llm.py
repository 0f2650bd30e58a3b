"""The model call behind `TaskExecutor.llm_call`: resolve the model, retry transient failures,
stream deltas to the run and record the answered call on the current step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskengine.engine.events import LLMCall
from taskengine.model_calls import delta_sink
from taskengine.step_runtime import StepResources, prompt_with_retries
from taskengine.steps.current import current_resources

if TYPE_CHECKING:
    from taskengine.handlers.context import ExecContext
    from taskengine.steps.task_executor import TaskExecutor

__all__ = ["ask_model"]


async def ask_model(
    executor: TaskExecutor,
    ctx: ExecContext | None,
    task_id: str | None,
    prompt: str,
    *,
    system: str,
    model: str | None,
    provider: str | None,
    temperature: float | None,
) -> str:
    """Send `prompt` (already checked) to the model; the trimmed reply text."""
    from taskengine.chain import LLMExecutionConfig

    resolver = await _resources(executor).get_resolver()
    config = LLMExecutionConfig(
        model=model or executor.llm_model, provider=provider or executor.provider or ""
    )
    result, attempt = await prompt_with_retries(
        resolver,
        config,
        prompt,
        system=system,
        temperature=temperature,
        on_delta=delta_sink(ctx, task_id or "") if ctx is not None else None,
        timeout=ctx.timeout if ctx else None,
        retries=executor.llm_retries,
        retry_base=executor.retry_base,
        retry_max=executor.retry_max,
        task_id=task_id,
        run_id=ctx.run.run_id if ctx is not None else None,
    )
    if ctx is not None:
        await _record(ctx, task_id or "", result, attempt)
    return (result.message.content or "").strip()


def _resources(executor: TaskExecutor) -> StepResources:
    """The current run's resources; outside a run, ones kept until `executor.aclose()`."""
    res = current_resources.get()
    if res is None:
        if executor._standalone is None:
            executor._standalone = StepResources(executor)
        res = executor._standalone
    return res


async def _record(ctx: ExecContext, task_id: str, result: Any, attempt: int) -> None:
    ctx.note(provider=result.provider, model=result.model)
    if attempt > 1:
        ctx.note(llm_attempts=attempt)
    if ctx.emit_llm_call is not None:
        await ctx.emit_llm_call(
            task_id,
            LLMCall(
                provider=result.provider,
                model=result.model,
                latency_ms=result.latency_ms,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
            ),
        )
