"""Execution: run an inline chain, prompt the default model, embed text, list what is supported."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from taskengine.bounds import check_depth
from taskengine.datatypes import DataType
from taskengine.ids import new_id
from taskengine.redaction import DEFAULT_REDACTOR
from taskengine.server.deps import (
    ServerState,
    chain_from_value,
    get_state,
    off_loop,
    request_id,
    state_of,
)
from taskengine.server.errors import ApiError
from taskengine.server.limits import with_run_timeout

__all__ = ["router"]

router = APIRouter(tags=["execution"])


class TaskRequest(BaseModel):
    """Run `chain` (inline) or the stored chain `chainId` on `input` converted to `inputType`."""

    model_config = ConfigDict(populate_by_name=True)

    input: Any = None
    input_type: str = Field("string", alias="inputType")
    chain: dict[str, Any] | str | None = None
    chain_id: str | None = Field(None, alias="chainId")
    breakpoints: list[str] = Field(default_factory=list)
    run_async: bool = Field(False, alias="async", description="Queue it for the workers: 202.")


class ExecuteRequest(BaseModel):
    prompt: str | None = None
    model: str | None = None
    provider: str | None = None
    system_instruction: str | None = None
    temperature: float | None = None


class EmbedRequest(BaseModel):
    text: str | None = None
    model: str | None = None
    provider: str | None = None


def _bad(message: str, field: str) -> ApiError:
    return ApiError(400, message, type="BadRequestError", code="invalid_request", field=field)


@router.post("/tasks", summary="Run a chain on an input")
async def run_task(body: TaskRequest, request: Request) -> JSONResponse:
    """Returns `{runId, output, outputType, state, status, totals}` (state: CapturedStateUnit list).

    With `"async": true` or `Prefer: respond-async`: 202 `{runId, status: "queued"}` at once.
    """
    state = state_of(request)
    check_depth({"chainId": body.chain_id, "inputType": body.input_type,
                 "breakpoints": body.breakpoints}, field="body")  # fmt: skip
    if body.chain is not None:
        chain = await off_loop(chain_from_value, body.chain)
    elif body.chain_id:
        chain = await state.stored_chain(body.chain_id)
    else:
        raise _bad(
            "send the chain to run as 'chain' (or a stored chain's id as 'chainId')", "chain"
        )
    from taskengine.server.queued import enqueue_run, wants_async

    if wants_async(request, body.run_async):
        return await enqueue_run(
            state, request, chain, body.input, body.input_type,
            request_id=request_id(request), breakpoints=body.breakpoints,
        )  # fmt: skip
    result = await state.run_chain(
        chain,
        body.input,
        body.input_type,
        request_id=request_id(request),
        breakpoints=body.breakpoints,
    )
    # already JSON-safe: skip FastAPI's recursive encoder on the (possibly long) state list
    return JSONResponse(DEFAULT_REDACTOR.answer(result.to_dict()))


def _config(model: str | None, provider: str | None) -> Any:
    if not model and not provider:
        return None
    from taskengine.chain import LLMExecutionConfig

    return LLMExecutionConfig(model=model or "", provider=provider or "")


def _span(state: ServerState, operation: str, subject: str, **meta: Any) -> Any:
    sink = state.runtime.activity
    return sink.start(operation, subject, **meta) if sink is not None else nullcontext()


@router.post("/execute", summary="Send one prompt to a model")
async def execute(
    request: Request, body: ExecuteRequest | None = None, state: ServerState = Depends(get_state)
) -> dict[str, Any]:
    """Prompt the default model (or `model`/`provider`); returns `{id, response, model, provider}`."""
    if body is None or not body.prompt:
        raise _bad("'prompt' is required", "prompt")
    check_depth(body.model_dump(), field="body")  # lone surrogates: 400 naming the field
    resolver = state.runtime.resolver
    config = _config(body.model, body.provider)
    async with state.limiter.slot():
        with _span(
            state, "execute", "prompt", model=body.model or "", provider=body.provider or ""
        ):
            result = await with_run_timeout(
                resolver.prompt(config, body.prompt, system_instruction=body.system_instruction or "",
                                temperature=body.temperature),
                state.run_timeout,
            )  # fmt: skip
    return {
        "id": request_id(request) or new_id(),
        "response": (result.message.content or "").strip(),
        "model": result.model,
        "provider": result.provider,
    }


@router.post("/embed", summary="Embed a text")
async def embed(
    body: EmbedRequest | None = None, state: ServerState = Depends(get_state)
) -> dict[str, Any]:
    """Embed `text` with the default embedding model (or `model`/`provider`); returns `{vector, …}`."""
    if body is None or not body.text:
        raise _bad("'text' is required", "text")
    check_depth(body.model_dump(), field="body")
    config = _config(body.model, body.provider)
    async with state.limiter.slot():
        with _span(state, "embed", "text", model=body.model or "", provider=body.provider or ""):
            result = await with_run_timeout(
                state.runtime.resolver.embed(config, body.text), state.run_timeout
            )
    return {"vector": list(result.vector), "model": result.model, "provider": result.provider}


@router.get("/supported", summary="Handlers, operators, data types and hooks this server knows")
async def supported(state: ServerState = Depends(get_state)) -> dict[str, Any]:
    from taskengine.chain.lint import BUILTIN_HANDLERS
    from taskengine.transitions import supported_operators

    executor = state.runtime.env.executor
    handlers = getattr(executor, "handler_names", None) or sorted(BUILTIN_HANDLERS)
    hooks = state.runtime.hooks
    return {
        "handlers": sorted(handlers),
        "operators": list(supported_operators()),
        "dataTypes": DataType.names(),
        "hooks": sorted(await hooks.supports()) if hooks is not None else [],
    }
