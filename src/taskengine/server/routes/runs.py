"""Durable runs: list them, show one with its steps, resume a paused or interrupted one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from taskengine.redaction import DEFAULT_REDACTOR
from taskengine.server.deps import ServerState, get_state, page_limit
from taskengine.server.errors import ApiError
from taskengine.server.limits import with_run_timeout
from taskengine.store.base import RUN_STATUSES, run_summary, run_view

__all__ = ["router"]

router = APIRouter(prefix="/runs", tags=["runs"])


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    set: dict[str, Any] = Field(default_factory=dict, description="Variables to change first.")
    breakpoints: list[str] | None = Field(None, description="Replace the run's breakpoints.")


@router.get("", summary="List runs, newest first")
async def list_runs(
    limit: int = Query(50, description="Page size (at most 1000)."),
    cursor: str | None = Query(None, description="`nextCursor` of the previous page."),
    status: str | None = Query(None, description="Only runs with this status."),
    chain_id: str | None = Query(None, alias="chainId", description="Only runs of this chain."),
    state: ServerState = Depends(get_state),
) -> dict[str, Any]:
    if status and status not in RUN_STATUSES:
        raise ApiError(
            400,
            f"unknown run status {status!r}; one of: {', '.join(sorted(RUN_STATUSES))}",
            type="BadRequestError",
            code="bad_status",
        )
    page = await state.store.list_runs(
        limit=page_limit(limit),
        cursor=cursor or None,
        status=status or None,
        chain_id=chain_id or None,
    )
    items = [run_summary(rec) for rec in page.items]
    return {"items": items, "nextCursor": page.next_cursor}


@router.get("/{run_id}", summary="One run with its step history")
async def get_run(run_id: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return DEFAULT_REDACTOR.answer(run_view(await state.store.load_state(run_id)))


@router.post("/{run_id}/resume", summary="Resume a run from its last checkpoint")
async def resume_run(
    run_id: str, body: ResumeRequest | None = None,
    state: ServerState = Depends(get_state),
) -> dict[str, Any]:  # fmt: skip
    """409 when another process is resuming it; 404 for an unknown run."""
    body = body or ResumeRequest()
    env = state.runtime.env
    async with state.limiter.slot():
        result = await with_run_timeout(
            env.resume(run_id, set_vars=body.set or None, breakpoints=body.breakpoints),
            state.run_timeout, run_id=run_id,
        )  # fmt: skip
    return DEFAULT_REDACTOR.answer(result.to_dict())
