"""The run inspector at `/ui`: server-rendered pages over the same store and engine as the API.

Runs (filters, paging, live refresh), one run (graph with the path taken, step timeline,
variables, live updates over server-sent events), steering (edit a paused run's variables and
resume it, resume a failed or interrupted run, start a run with breakpoints) and chains (list,
graph, definition, upload with lint problems). Assets ship in the package; no CDN, no build.

Auth is the API's: with `server.api_token` set, a page needs the bearer header or the
`taskengine_token` cookie that `/ui/login` sets (HttpOnly, SameSite=Strict).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from taskengine.errors import (
    ChainValidationError,
    ConflictError,
    NotFoundError,
    TaskEngineError,
)
from taskengine.ids import new_id
from taskengine.server.deps import ServerState, get_state
from taskengine.server.ui.events import RunEventBroker, broker_for
from taskengine.server.ui.forms import parse_variables
from taskengine.server.ui.graph import chain_svg

__all__ = ["COOKIE", "router"]

COOKIE = "taskengine_token"
HERE = Path(__file__).parent
STATUSES = ("running", "paused", "succeeded", "failed", "interrupted")
RESUMABLE = frozenset({"paused", "failed", "interrupted"})
PAGE = 50

router = APIRouter(prefix="/ui", include_in_schema=False)
_templates: Any = None


def templates() -> Any:
    global _templates
    if _templates is None:
        import jinja2

        _templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        from taskengine.server.ui.forms import shown

        _templates.filters["shown"] = shown
        _templates.filters["tojson_pretty"] = lambda v: json.dumps(
            v, indent=2, ensure_ascii=False, default=str
        )
    return _templates


def render(name: str, http_status: int = 200, /, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates().get_template(name).render(**context), status_code=http_status)


# --- auth ---------------------------------------------------------------------------------


async def authorized(request: Request, state: ServerState = Depends(get_state)) -> ServerState:
    """The API token from the bearer header or the login cookie; a page without it goes to login."""
    token = state.settings.server.api_token
    if token:
        from taskengine.server.auth import bearer_ok

        cookie = request.cookies.get(COOKIE, "")
        header = request.headers.get("authorization", "").encode()
        ok = bearer_ok(header, token) or hmac.compare_digest(cookie.encode(), token.encode())
        if not ok:
            raise _LoginNeeded()
    if request.method == "POST":
        _same_origin(request)
    return state


class _LoginNeeded(Exception):
    pass


def _same_origin(request: Request) -> None:
    """Forms post only from our own pages (the cookie is SameSite=Strict as well)."""
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        from taskengine.server.errors import ApiError

        raise ApiError(403, "cross-origin form post refused", type="ForbiddenError", code="csrf")


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return render("login.html", error="", next=request.query_params.get("next", "/ui"))


@router.post("/login")
async def login(request: Request, state: ServerState = Depends(get_state)) -> Response:
    _same_origin(request)
    form = await request.form()
    token = str(form.get("token", ""))
    target = str(form.get("next", "/ui"))
    if not target.startswith("/ui"):
        target = "/ui"
    expected = state.settings.server.api_token or ""
    if expected and not hmac.compare_digest(token.encode(), expected.encode()):
        return render("login.html", 401, error="that token is not the server's", next=target)
    reply = RedirectResponse(target, status_code=303)
    reply.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui")
    return reply


@router.get("/static/{name}")
async def static(name: str) -> Response:
    kinds = {"ui.js": "text/javascript", "ui.css": "text/css"}
    if name not in kinds:
        raise NotFoundError(f"no UI asset {name!r}")
    return Response((HERE / "static" / name).read_bytes(), media_type=kinds[name],
                    headers={"Cache-Control": "max-age=300"})  # fmt: skip


# --- runs ---------------------------------------------------------------------------------


@router.get("")
async def runs_page(request: Request, state: ServerState = Depends(authorized)) -> HTMLResponse:
    query = request.query_params
    status = query.get("status") or None
    chain_id = query.get("chain") or None
    if status not in (None, *STATUSES):
        status = None
    page = await state.store.list_runs(
        limit=PAGE, cursor=query.get("cursor") or None, status=status, chain_id=chain_id
    )
    template = "runs_rows.html" if query.get("fragment") else "runs.html"
    return render(template, runs=page.items, next_cursor=page.next_cursor, status=status or "",
                  chain=chain_id or "", statuses=STATUSES)  # fmt: skip


@router.get("/runs/{run_id}")
async def run_page(run_id: str, state: ServerState = Depends(authorized)) -> HTMLResponse:
    return await _render_run(state, run_id)


async def _render_run(
    state: ServerState, run_id: str, *, errors: dict[str, str] | None = None,
    edited: dict[str, str] | None = None, message: str = "", status_code: int = 200,
) -> HTMLResponse:  # fmt: skip
    saved = await state.store.load_state(run_id)
    record = saved.run
    steps = saved.history
    path = [s.get("taskID", "") for s in steps]
    current = saved.next_task if record.status in ("running", "paused") else None
    longest = max((s.get("duration", 0) for s in steps), default=0) or 1
    variables = [
        (name, saved.var_types.get(name, "any"), value)
        for name, value in sorted(saved.variables.items())
        if name != "previous_output"
    ]
    return render(
        "run.html", status_code,
        run=record, steps=steps, longest=longest, variables=variables,
        graph=chain_svg(record.chain, path, current), current=current,
        resumable=record.status in RESUMABLE, errors=errors or {}, edited=edited or {},
        message=message, totals=record.totals or {},
    )  # fmt: skip


@router.post("/runs/{run_id}/resume")
async def resume(
    run_id: str, request: Request, state: ServerState = Depends(authorized)
) -> Response:
    saved = await state.store.load_state(run_id)
    if saved.run.status not in RESUMABLE:
        return await _render_run(state, run_id, status_code=409,
                                 message=f"a {saved.run.status} run cannot be resumed")  # fmt: skip
    form = await request.form()
    fields = {k: str(v) for k, v in form.items()}
    changed, errors = parse_variables(fields, saved.variables, saved.var_types)
    if errors:
        return await _render_run(state, run_id, errors=errors, edited=fields, status_code=400,
                                 message="fix the marked variables")  # fmt: skip
    _start(state, state.runtime.env.resume(run_id, set_vars=changed or None))
    await _wait_for_change(state, run_id, saved.run.updated_at)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.get("/runs/{run_id}/events")
async def run_events(run_id: str, state: ServerState = Depends(authorized)) -> StreamingResponse:
    await state.store.get_run(run_id)  # 404 for an unknown run
    broker = broker_for(state)
    return StreamingResponse(
        _event_stream(state, broker, run_id), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )  # fmt: skip


async def _event_stream(state: ServerState, broker: RunEventBroker, run_id: str) -> Any:
    """`update` events whenever the run changes: pushed by run events of this process, and
    checked in the store every second for runs that other processes drive."""
    last = None
    for _ in range(600):  # at most ~10 minutes per connection; the browser reconnects
        record = await state.store.get_run(run_id)
        seen = (record.status, record.step_count, str(record.updated_at))
        if seen != last:
            last = seen
            data = {"status": record.status, "steps": record.step_count,
                    "nextTask": record.next_task}  # fmt: skip
            yield f"event: update\ndata: {json.dumps(data)}\n\n"
        else:
            yield ": keep-alive\n\n"
        await broker.wait(run_id, timeout=1.0)


def _start(state: ServerState, coro: Any) -> None:
    """Run `coro` (a run or resume) in the background; its outcome lands in the store."""
    tasks: set[asyncio.Task[Any]] = state.__dict__.setdefault("ui_tasks", set())
    broker_for(state)  # subscribe before the run emits its first event

    async def guarded() -> None:
        try:
            async with state.limiter.slot():
                await coro
        except TaskEngineError:
            pass  # recorded on the run; the page shows it

    task = asyncio.create_task(guarded())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _wait_for_change(
    state: ServerState, run_id: str, since: Any, timeout: float = 2.0
) -> None:
    """Give a just-started run a moment to reach the store, so the next page shows it moving."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            record = await state.store.get_run(run_id)
            if record.updated_at != since:
                return
        except NotFoundError:
            pass
        await asyncio.sleep(0.02)


# --- chains -------------------------------------------------------------------------------


@router.get("/chains")
async def chains_page(request: Request, state: ServerState = Depends(authorized)) -> HTMLResponse:
    page = await state.store.list_chains(limit=1000, cursor=request.query_params.get("cursor"))
    return render("chains.html", chains=page.items, next_cursor=page.next_cursor,
                  problems=[], source="", replace=False)  # fmt: skip


@router.post("/chains")
async def upload_chain(request: Request, state: ServerState = Depends(authorized)) -> Response:
    from taskengine.server.deps import off_loop
    from taskengine.server.routes.taskchains import _definition, _validated

    form = await request.form()
    source = str(form.get("definition", ""))
    replace = form.get("replace") == "1"
    status = 400
    try:
        chain, _warnings = await off_loop(_validated, source)
        # as the API: storing over an existing id is a conflict unless asked for (PUT there)
        await state.store.put_chain(chain.id, _definition(chain), create_only=not replace)
    except ChainValidationError as exc:
        problems = [(p.path or "", p.task_id or "", p.message) for p in exc.problems]
    except ConflictError:
        status = 409
        problems = [("id", "", f"a chain with id {chain.id!r} is already stored; tick "
                     "'replace' to store this definition in its place")]  # fmt: skip
    except TaskEngineError as exc:
        problems = [(getattr(exc, "field", "") or "", "", exc.message)]
    else:
        return RedirectResponse(f"/ui/chains/{chain.id}", status_code=303)
    page = await state.store.list_chains(limit=1000)
    return render("chains.html", status, chains=page.items, next_cursor=page.next_cursor,
                  problems=problems, source=source, replace=replace)  # fmt: skip


@router.get("/chains/{chain_id}")
async def chain_page(chain_id: str, state: ServerState = Depends(authorized)) -> HTMLResponse:
    import yaml

    record = await state.store.get_chain(chain_id)
    definition = record.definition
    return render("chain.html", chain_id=chain_id, graph=chain_svg(definition),
                  source=yaml.safe_dump(definition, sort_keys=False, allow_unicode=True),
                  tasks=[t["id"] for t in definition.get("tasks", [])], error="")  # fmt: skip


@router.post("/chains/{chain_id}/run")
async def start_run(
    chain_id: str, request: Request, state: ServerState = Depends(authorized)
) -> Response:
    form = await request.form()
    chain = await state.stored_chain(chain_id)
    points = [str(v) for v in form.getlist("breakpoint")]
    run_id = new_id()
    _start(state, state.run_chain(chain, str(form.get("input", "")), "string",
                                  request_id=run_id, run_id=run_id, breakpoints=points,
                                  admitted=True))  # fmt: skip
    await _wait_for_change(state, run_id, None)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


def install(app: Any) -> None:
    """Mount the UI: its router and the redirect of pages without a token to the login page."""
    from fastapi.responses import RedirectResponse as Redirect

    app.include_router(router)

    async def to_login(request: Request, _exc: Exception) -> Response:
        return Redirect(f"/ui/login?next={request.url.path}", status_code=303)

    app.add_exception_handler(_LoginNeeded, to_login)
