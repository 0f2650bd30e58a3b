"""The remote-hook registry and hook schemas.

A remote hook is an OpenAPI service whose operations become tools `name.<operationId>`. Its
`headers` and `inject_body` values are secrets injected into every call: they are accepted and
stored but never returned (GET shows the names with `***`); sending `***` back on PUT keeps
the stored value.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from taskengine.errors import ConflictError
from taskengine.ids import new_id
from taskengine.server.deps import ServerState, get_state, page_limit, read_json
from taskengine.server.remote_hooks import (
    drop_sealed,
    masked_record,
    merge_write_only,
    seal_write_only,
    unseal_write_only,
    validate_record,
)

__all__ = ["router"]

router = APIRouter(prefix="/hooks", tags=["hooks"])


def _view(rec: Any) -> dict[str, Any]:
    """The masked record, with the Go runtime's names for url and timeout alongside ours."""
    view = masked_record(rec.hook_id, rec.record, rec.created_at, rec.updated_at)
    if "url" in view:
        view["endpointUrl"] = view["url"]
    if isinstance(view.get("timeout"), (int, float)):
        view["timeoutMs"] = round(view["timeout"] * 1000)
    return view


async def _check_name_free(state: ServerState, name: str) -> None:
    """A name another hook provider (local, built-in, configured remote) serves is a conflict."""
    stored = state.remote_hooks
    mine = set(stored.hook_names()) if stored is not None else set()
    hooks = state.runtime.hooks
    if hooks is not None and name not in mine and name in await hooks.supports():
        raise ConflictError(f"hook name {name!r} is already used by another hook", field="name")


def _stored(config: Any) -> dict[str, Any]:
    return config.model_dump(mode="json")


#: keys of the Go runtime's remote-hook body that are ours under another name, or read-only
_GO_READ_ONLY = ("id", "createdAt", "updatedAt")


def _from_go_body(body: Any) -> Any:
    """Accept the Go runtime's body (`endpointUrl`, `timeoutMs`, `properties` …) as well as ours."""
    if not isinstance(body, dict) or not any(
        k in body for k in ("endpointUrl", "timeoutMs", "properties", *_GO_READ_ONLY)
    ):
        return body
    out = {k: v for k, v in body.items() if k not in _GO_READ_ONLY}
    if "endpointUrl" in out:
        url = out.pop("endpointUrl")
        out.setdefault("url", url)
    if "timeoutMs" in out:
        millis = out.pop("timeoutMs")
        if isinstance(millis, (int, float)) and not isinstance(millis, bool) and millis > 0:
            out.setdefault("timeout", millis / 1000.0)
        elif millis not in (None, 0):
            out.setdefault("timeout", millis)  # let validation name the bad value
    properties = out.pop("properties", None)
    if isinstance(properties, dict) and properties:
        headers = dict(out.get("headers") or {})
        inject = dict(out.get("inject_body") or {})
        if (
            "name" in properties and "value" in properties
        ):  # one injected argument {name, value, in}
            where = str(properties.get("in") or "body").lower()
            (headers if where == "header" else inject)[str(properties["name"])] = properties[
                "value"
            ]
        else:
            inject.update(properties)
        if headers:
            out["headers"] = headers
        if inject:
            out["inject_body"] = inject
    elif properties not in (None, {}):
        out["properties"] = properties  # not an object: validation reports it
    return out


@router.get("/schemas", summary="Tool schemas of every hook, by hook name")
async def schemas(state: ServerState = Depends(get_state)) -> dict[str, Any]:
    hooks = state.runtime.hooks
    return await hooks.get_schemas_for_supported_hooks() if hooks is not None else {}


@router.post("/remote", status_code=201, summary="Register a remote hook")
async def create_hook(request: Request, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Body: `{name, url, headers?, inject_body?, timeout?, schema_ttl?}`; 409 for a taken name."""
    config = validate_record(_from_go_body(await read_json(request)))
    await _check_name_free(state, config.name)
    hook_id = new_id()
    stored = await seal_write_only(_stored(config), hook_id, state.secrets)
    try:
        rec = await state.store.put_remote_hook(hook_id, stored, create_only=True)
    except BaseException:
        await drop_sealed(hook_id, state.secrets)
        raise
    if state.remote_hooks is not None:
        state.remote_hooks.put(hook_id, config)
    return _view(rec)


@router.get("/remote", summary="List remote hooks (header values masked)")
async def list_hooks(
    limit: int = Query(100, description="Page size (at most 1000)."),
    cursor: str | None = Query(None, description="`nextCursor` of the previous page."),
    state: ServerState = Depends(get_state),
) -> dict[str, Any]:
    page = await state.store.list_remote_hooks(limit=page_limit(limit), cursor=cursor or None)
    return {"items": [_view(r) for r in page.items], "nextCursor": page.next_cursor}


@router.get("/remote/by-name/{name}", summary="A remote hook by name")
async def get_hook_by_name(name: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return _view(await state.store.get_remote_hook_by_name(name))


@router.get("/remote/{hook_id}", summary="A remote hook by id")
async def get_hook(hook_id: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return _view(await state.store.get_remote_hook(hook_id))


@router.put("/remote/{hook_id}", summary="Replace a remote hook")
async def put_hook(
    hook_id: str, request: Request, state: ServerState = Depends(get_state)
) -> dict[str, Any]:
    old = await state.store.get_remote_hook(hook_id)
    body = _from_go_body(await read_json(request))
    if isinstance(body, dict):
        body = merge_write_only(body, old.record)  # values sent back as *** keep their reference
    checked = validate_record(body).model_dump(mode="json")
    config = validate_record(await unseal_write_only(checked, state.secrets))
    await _check_name_free(state, config.name)
    stored = await seal_write_only(checked, hook_id, state.secrets)
    rec = await state.store.put_remote_hook(hook_id, stored)
    await drop_sealed(hook_id, state.secrets, keep=stored)
    if state.remote_hooks is not None:
        state.remote_hooks.put(hook_id, config)
    return _view(rec)


@router.delete("/remote/{hook_id}", status_code=204, summary="Remove a remote hook")
async def delete_hook(hook_id: str, state: ServerState = Depends(get_state)) -> Response:
    await state.store.delete_remote_hook(hook_id)
    await drop_sealed(hook_id, state.secrets)
    if state.remote_hooks is not None:
        state.remote_hooks.remove(hook_id)
    return Response(status_code=204)
