"""Async runs over HTTP: `POST /tasks` with `"async": true` (or `Prefer: respond-async`).

The run is stored as `queued` with its job (one transaction) and the answer is 202 with the
run id at once; a `taskengine worker` executes it and `GET /runs/{id}` shows how far it got.
The queue is opened on the first async request and closed with the server.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from taskengine.errors import ConfigError, StoreError
from taskengine.server.errors import ApiError

if TYPE_CHECKING:
    from fastapi import Request

    from taskengine.chain import TaskChainDefinition
    from taskengine.server.deps import ServerState

__all__ = ["close_queue", "enqueue_run", "wants_async"]

_LOCK = "_queue_lock"
_QUEUE = "_queue_app"


def wants_async(request: Request, flag: bool) -> bool:
    """`"async": true` in the body, or RFC 7240 `Prefer: respond-async`."""
    if flag:
        return True
    prefer = request.headers.get("prefer", "")
    return any(p.strip().lower() == "respond-async" for p in prefer.replace(";", ",").split(","))


async def _queue(state: ServerState) -> Any:
    queue = getattr(state, _QUEUE, None)
    if queue is not None:
        return queue
    lock = state.__dict__.setdefault(_LOCK, asyncio.Lock())
    async with lock:
        queue = getattr(state, _QUEUE, None)
        if queue is None:
            try:
                from taskengine.workers.app import QueueApp

                queue = await QueueApp(state.settings.db, state.settings.queue).open()
            except (ConfigError, StoreError) as exc:
                raise ApiError(
                    503,
                    f"async runs are not available on this server: {exc}",
                    type="ServiceUnavailableError",
                    code="queue_unavailable",
                ) from exc
            setattr(state, _QUEUE, queue)
    return queue


async def enqueue_run(
    state: ServerState,
    request: Request,
    chain: TaskChainDefinition,
    input: Any,
    input_type: str,
    *,
    request_id: str,
    breakpoints: list[str],
) -> JSONResponse:
    """Queue the run; 202 `{runId, status: "queued"}` with `Location: /runs/{id}`."""
    from taskengine.workers.submit import submit_run

    queue = await _queue(state)
    run_id = await submit_run(
        state.runtime.env, queue, chain, input, input_type,
        request_id=request_id, breakpoints=breakpoints,
    )  # fmt: skip
    headers = {"Location": f"/runs/{run_id}"}
    if request.headers.get("prefer"):
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse({"runId": run_id, "status": "queued"}, status_code=202, headers=headers)


async def close_queue(state: ServerState) -> None:
    queue = getattr(state, _QUEUE, None)
    if queue is not None:
        setattr(state, _QUEUE, None)
        await queue.aclose()
