"""`create_app(settings)`: the FastAPI app, its middleware, and the lifespan that owns resources.

Nothing is opened at import or at `create_app` time: the lifespan builds one `Runtime` (engine,
run store, providers, hooks, activity sink, metrics) when the server starts and closes it when
it stops, so several apps (tests) can live in one process without sharing state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from taskengine.server.deps import ServerState

if TYPE_CHECKING:
    from fastapi import FastAPI

    from taskengine.config import Settings
    from taskengine.runtime import Runtime

__all__ = ["create_app", "tune_gc_for_service"]

logger = logging.getLogger("taskengine.server")

_DESCRIPTION = (
    "Runs taskengine chains over HTTP: inline (`/tasks`), stored (`/taskchains`), and as "
    "OpenAI-compatible chat models (`/openai/{chain_id}/v1`). Every failure answers "
    '`{"error": {"message", "type", "code"}}`. When `server.api_token` is set, every route but '
    "`/health` and `/version` needs `Authorization: Bearer <token>`."
)


def tune_gc_for_service() -> None:
    """Collector settings for a process that serves many concurrent runs (`taskengine serve`).

    Everything loaded at start-up lives as long as the process, so it is frozen out of the
    collector's scans, and the young generation is collected every 200 000 allocations instead
    of 700: under 500 concurrent runs 50 000 measured 331-349 requests/s against 273-281 with
    the defaults, at the same peak memory; 200 000 then cut the collector's share of the
    server's CPU from about 6% to 1% (`benchmarks/server_load.py`, docs/performance.md), peak
    memory 135 → 137 MiB. A process-wide choice, so only the CLI makes it.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 20, 20)


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    hook_modules: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """Build the server app.

    Args:
        settings: the configuration (default: loaded from the config file and environment).
        runtime: an already open `Runtime` to serve (the caller closes it); by default the
            app opens its own in the lifespan and closes it on shutdown.
        hook_modules: Python files or modules that register local hooks, imported on start.
        environ: the environment to read when `settings` is None (default: `os.environ`).
    """
    _require_fastapi()
    from fastapi import FastAPI

    from taskengine import __version__

    settings = _settings_for(settings, runtime, environ)
    hook_list = list(hook_modules)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await _open_state(settings, runtime, hook_list, environ)
        app.state.taskengine = state
        try:
            async with mcp_running():
                yield
        finally:
            await _close_state(state, owns_runtime=runtime is None)

    app = FastAPI(
        title="taskengine", version=__version__, description=_DESCRIPTION, lifespan=lifespan
    )
    mcp_running = _install_routes(app)
    _install_middleware(app, settings, environ)
    _document_auth(app, protected=bool(settings.server.api_token))
    return app


def _require_fastapi() -> None:
    """A ConfigError naming the extra to install when FastAPI is missing."""
    try:
        import fastapi  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        from taskengine.errors import ConfigError

        raise ConfigError(
            f"the HTTP server needs FastAPI and uvicorn: pip install 'taskengine[server]' ({exc})"
        ) from exc


def _settings_for(
    settings: Settings | None, runtime: Runtime | None, environ: Mapping[str, str] | None
) -> Settings:
    """The given settings, else the runtime's, else those of the config file and environment."""
    if settings is None:
        if runtime is not None:
            settings = runtime.settings
        else:
            from taskengine.config import load_settings

            settings = load_settings(environ=environ)
    assert settings is not None
    return settings


def _install_routes(app: FastAPI) -> Any:
    """Error handlers, API routers, the UI and the chains' MCP endpoint; returns the MCP runner."""
    from taskengine.mcp.transports import mount_chains_mcp
    from taskengine.server import ui
    from taskengine.server.errors import install_error_handlers
    from taskengine.server.routes import other_routers, run_routers

    install_error_handlers(app)
    # the run endpoints' routes first, as the app's own (see taskengine.server.routes)
    app.router.routes[0:0] = [route for router in run_routers() for route in router.routes]
    for router in other_routers():
        app.include_router(router)
    ui.install(app)
    return mount_chains_mcp(app, lambda: app.state.taskengine.runtime)


def _install_middleware(
    app: FastAPI, settings: Settings, environ: Mapping[str, str] | None
) -> None:
    """Auth and limits, then CORS outside it, then trace propagation when tracing is on."""
    from fastapi.middleware.cors import CORSMiddleware

    from taskengine.observability.otel import otel_config, traceparent_middleware
    from taskengine.server.middleware import ServerMiddleware

    server = settings.server
    app.add_middleware(
        ServerMiddleware, api_token=server.api_token, max_body_bytes=server.max_body_bytes
    )
    if server.cors_origins:
        # Outermost, so browsers' preflight requests are answered without a token.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(server.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "X-Run-ID"],
        )
    if otel_config(settings, os.environ if environ is None else environ) is not None:
        app.add_middleware(traceparent_middleware)  # runs inherit the caller's trace


async def _open_state(
    settings: Settings,
    runtime: Runtime | None,
    hook_modules: list[str],
    environ: Mapping[str, str] | None,
) -> ServerState:
    from taskengine.runtime import open_runtime
    from taskengine.server.remote_hooks import StoredRemoteHooks

    metrics_sink = None
    metrics_observer = None
    if settings.metrics.enabled:
        from taskengine.observability.metrics import MetricsObserver, PrometheusMetrics

        metrics_sink = PrometheusMetrics()
        metrics_observer = MetricsObserver(metrics_sink, settings.price_table())
    owned = runtime is None
    if runtime is None:
        observers = []
        if settings.prices:
            from taskengine.observability.metrics import CostObserver

            observers.append(CostObserver(settings.price_table()))
        runtime = await open_runtime(
            settings, environ=environ, use_store=True, activity=True, metrics=metrics_observer,
            observers=observers, hook_modules=hook_modules,
        )  # fmt: skip
    elif metrics_observer is not None:
        runtime.env.observers.append(metrics_observer)
    remote = StoredRemoteHooks()
    try:
        await remote.open()
        if runtime.store is not None and runtime.hooks is not None:
            await _load_remote_hooks(runtime, remote)
            runtime.hooks.add(remote)
    except BaseException:
        await remote.aclose()
        if owned:
            await runtime.aclose()
        raise
    return ServerState(settings, runtime, metrics=metrics_sink, remote_hooks=remote)


async def _load_remote_hooks(runtime: Runtime, remote: Any) -> None:
    """Serve the hooks registered earlier; a broken or clashing record is skipped with a warning."""
    from taskengine.errors import TaskEngineError
    from taskengine.server.remote_hooks import unseal_write_only, validate_record
    from taskengine.store.secret_store import SecretStore

    secrets = SecretStore(runtime.store)

    taken = set(await runtime.hooks.supports())
    found = []
    cursor = None
    while True:
        page = await runtime.store.list_remote_hooks(limit=1000, cursor=cursor)
        for rec in page.items:
            try:
                config = validate_record(await unseal_write_only(rec.record, secrets))
            except TaskEngineError as exc:
                logger.warning("skipping stored remote hook %r: %s", rec.name, exc)
                continue
            if config.name in taken:
                logger.warning(
                    "skipping stored remote hook %r: another hook has that name", rec.name
                )
                continue
            taken.add(config.name)
            found.append((rec.hook_id, config))
        cursor = page.next_cursor
        if not cursor:
            break
    remote.load(found)


async def _close_state(state: ServerState, *, owns_runtime: bool) -> None:
    from taskengine.server.queued import close_queue

    await close_queue(state)
    runtime = state.runtime
    if runtime.activity is not None:
        await runtime.activity.flush()
    if owns_runtime:
        await runtime.aclose()  # closes the hook registry, which closes the stored remote hooks
    elif state.remote_hooks is not None:
        await state.remote_hooks.aclose()


def _document_auth(app: FastAPI, *, protected: bool) -> None:
    """Describe the bearer token in the OpenAPI document (security on every route but two)."""
    from fastapi.openapi.utils import get_openapi

    from taskengine.server.auth import PUBLIC_PATHS

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)  # fmt: skip
        from taskengine.server.openapi_doc import declare_errors

        declare_errors(schema)
        if protected:
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearerAuth": []}]
            for path in PUBLIC_PATHS:
                for operation in schema.get("paths", {}).get(path, {}).values():
                    operation["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
