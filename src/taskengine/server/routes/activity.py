"""The activity log: recent events, requests, their captured state, operations (seed 004's queries)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from taskengine.server.deps import ServerState, get_state

__all__ = ["router"]

router = APIRouter(prefix="/activity", tags=["activity"])


@router.get("/logs", summary="Recent activity events, newest first")
async def logs(
    limit: int = Query(100, ge=1, le=10_000), state: ServerState = Depends(get_state)
) -> list[dict[str, Any]]:
    return [e.to_dict() for e in await state.activity.get_activity_logs(limit)]


@router.get("/requests", summary="Recent request ids, newest first")
async def requests(
    limit: int = Query(100, ge=1, le=10_000), state: ServerState = Depends(get_state)
) -> list[dict[str, Any]]:
    return [r.to_dict() for r in await state.activity.get_recent_request_ids(limit)]


@router.get("/requests/{request_id}", summary="The events of one request, oldest first")
async def request_events(
    request_id: str, state: ServerState = Depends(get_state)
) -> list[dict[str, Any]]:
    return [e.to_dict() for e in await state.activity.get_activity_logs_by_request_id(request_id)]


@router.get("/requests/{request_id}/state", summary="The captured steps of one request")
async def request_state(
    request_id: str, state: ServerState = Depends(get_state)
) -> list[dict[str, Any]]:
    return [u.to_dict() for u in await state.activity.get_execution_state_by_request_id(request_id)]


@router.get("/operations", summary="Every (operation, subject) seen")
async def operations(state: ServerState = Depends(get_state)) -> list[dict[str, str]]:
    return [op.to_dict() for op in await state.activity.get_known_operations()]


@router.get("/operations/{operation}/{subject}", summary="Recent request ids of one operation")
async def operation_requests(
    operation: str, subject: str, state: ServerState = Depends(get_state)
) -> list[dict[str, str]]:
    from taskengine.activity import Operation

    found = await state.activity.get_request_id_by_operation(Operation(operation, subject))
    return [r.to_dict() for r in found]


@router.get("/stateful-requests", summary="Request ids with captured execution state")
async def stateful_requests(state: ServerState = Depends(get_state)) -> list[str]:
    return await state.activity.get_stateful_requests()
