"""Liveness, version and Prometheus metrics."""

from __future__ import annotations

import platform
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from taskengine.server.deps import ServerState, get_state
from taskengine.server.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/health", summary="Liveness (no token needed)")
async def health(state: ServerState = Depends(get_state)) -> dict[str, Any]:
    store = state.runtime.store
    return {
        "status": "ok",
        "store": getattr(store, "backend", None) if store is not None else None,
        "runsInFlight": state.limiter.active,
    }


@router.get("/version", summary="Version (no token needed)")
async def version() -> dict[str, str]:
    from taskengine import __version__

    return {"version": __version__, "python": platform.python_version()}


@router.get("/metrics", summary="Prometheus metrics (when metrics.enabled)")
async def metrics(state: ServerState = Depends(get_state)) -> Response:
    sink = state.metrics
    if sink is None:
        raise ApiError(404, "metrics are disabled on this server (set metrics.enabled: true)",
                       type="NotFoundError", code="metrics_disabled")  # fmt: skip
    return Response(sink.render_latest(), media_type=sink.content_type)
