"""The chain registry: store chains by id (validated and linted) in the run store's database.

As in the Go API, `GET /taskchains/{id}` answers with the chain definition itself (its
timestamps are in the `X-Created-At`/`X-Updated-At` headers) and a chain that fails validation
is a 400 (with every problem and its field path).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from taskengine.chain import TaskChainDefinition
from taskengine.errors import ChainValidationError, LintProblem
from taskengine.server.deps import (
    ServerState,
    chain_from_value,
    get_state,
    off_loop,
    page_limit,
    read_json,
)
from taskengine.server.errors import engine_error_response

__all__ = ["router"]

router = APIRouter(prefix="/taskchains", tags=["chains"])


def _iso(when: Any) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def _record(rec: Any, warnings: list[LintProblem] | None = None) -> dict[str, Any]:
    """A stored chain: the definition's own keys (what a Go client reads), plus keys no chain has."""
    out: dict[str, Any] = {
        **rec.definition,
        "id": rec.chain_id,
        "chain": rec.definition,
        "createdAt": _iso(rec.created_at),
        "updatedAt": _iso(rec.updated_at),
    }
    if warnings:
        out["warnings"] = [w.to_dict() for w in warnings]
    return out


async def _chain_body(request: Request) -> Any:
    """A chain from the body: JSON, or YAML text when the content type says so."""
    ctype = request.headers.get("content-type", "")
    if "yaml" in ctype or ctype.startswith("text/"):
        return (await request.body()).decode("utf-8", errors="replace")
    return await read_json(request)


def _invalid_chain(exc: ChainValidationError) -> JSONResponse:
    """A chain that fails validation: 400, as the Go API answers, with the problems listed."""
    response = engine_error_response(exc)
    response.status_code = 400
    return response


def _check_body_id(raw: Any, path_id: str) -> None:
    """A body naming another chain than the URL is a 422 (as in the Go API)."""
    body_id = raw.get("id") if isinstance(raw, dict) else None
    if body_id and body_id != path_id:
        raise ChainValidationError(
            [LintProblem(f"the body's id {body_id!r} differs from the URL's {path_id!r}",
                         chain_id=path_id, path="id")],
            chain_id=path_id,
        )  # fmt: skip


def _validated(
    raw: Any, path_id: str | None = None
) -> tuple[TaskChainDefinition, list[LintProblem]]:
    if isinstance(raw, dict) and path_id is not None:
        raw = {**raw, "id": path_id}
    chain = chain_from_value(raw)
    if path_id is not None and chain.id != path_id:
        chain = chain.model_copy(update={"id": path_id})
    if not chain.id:
        raise ChainValidationError([LintProblem("a stored chain needs an 'id'", path="id")])
    from taskengine.chain.lint import lint_chain

    warnings = [p for p in lint_chain(chain) if p.severity == "warning"]
    return chain, warnings


def _definition(chain: TaskChainDefinition) -> dict[str, Any]:
    return chain.model_dump(mode="json", exclude_defaults=True)


@router.post("", status_code=201, summary="Store a new chain")
async def create_chain(request: Request, state: ServerState = Depends(get_state)) -> Any:
    """201 with the stored chain; 409 when the id exists; 400 with field paths when it fails lint."""
    try:
        chain, warnings = await off_loop(_validated, await _chain_body(request))
    except ChainValidationError as exc:
        return _invalid_chain(exc)
    rec = await state.store.put_chain(chain.id, _definition(chain), create_only=True)
    return _record(rec, warnings)


@router.get("", summary="List stored chains")
async def list_chains(
    limit: int = Query(50, description="Page size (at most 1000)."),
    cursor: str | None = Query(None, description="`nextCursor` of the previous page."),
    state: ServerState = Depends(get_state),
) -> dict[str, Any]:
    page = await state.store.list_chains(limit=page_limit(limit), cursor=cursor or None)
    return {"items": [_record(r) for r in page.items], "nextCursor": page.next_cursor}


@router.get("/{chain_id}", summary="Get a stored chain (the definition itself, as the Go API)")
async def get_chain(chain_id: str, state: ServerState = Depends(get_state)) -> JSONResponse:
    rec = await state.store.get_chain(chain_id)
    headers = {
        "X-Created-At": _iso(rec.created_at) or "",
        "X-Updated-At": _iso(rec.updated_at) or "",
    }
    return JSONResponse(rec.definition, headers=headers)


@router.put("/{chain_id}", summary="Replace a stored chain")
async def put_chain(
    chain_id: str, request: Request, state: ServerState = Depends(get_state)
) -> Any:
    """404 when no chain has this id (create it with POST); 422 when the body's id differs."""
    raw = await _chain_body(request)
    _check_body_id(raw, chain_id)
    try:
        chain, warnings = await off_loop(_validated, raw, chain_id)
    except ChainValidationError as exc:
        return _invalid_chain(exc)
    rec = await state.store.put_chain(chain_id, _definition(chain), must_exist=True)
    return _record(rec, warnings)


@router.delete("/{chain_id}", status_code=204, summary="Delete a stored chain")
async def delete_chain(chain_id: str, state: ServerState = Depends(get_state)) -> Response:
    await state.store.delete_chain(chain_id)
    return Response(status_code=204)
