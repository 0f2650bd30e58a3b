"""`taskengine serve`: the HTTP server (FastAPI + uvicorn), an optional extra."""

from typing import Annotated

import typer

from taskengine.cli.common import config_path, setup_logging
from taskengine.cli.options import ConfigOpt, HooksOpt
from taskengine.errors import TaskEngineError

__all__ = ["serve"]


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Default: server.host in the settings.")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Default: server.port in the settings."),
    ] = None,
    hooks: HooksOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Start the HTTP server (FastAPI + uvicorn)."""
    try:
        import uvicorn  # noqa: F401

        from taskengine.server import create_app
    except ImportError as exc:
        raise TaskEngineError(
            f"the server needs extra packages: pip install 'taskengine[server]' ({exc})"
        ) from exc
    from taskengine.config import load_settings
    from taskengine.server.listen import bind_listener, check_startup, serve_forever

    settings = load_settings(config_path(config))
    host = host or settings.server.host
    port = port or settings.server.port
    bind_listener(host, port).close()  # a busy port fails here, before the app is built
    check_startup(settings, hooks or ())
    setup_logging(settings)
    app_ = create_app(settings, hook_modules=hooks or ())
    from taskengine.server.app import tune_gc_for_service

    tune_gc_for_service()
    server = settings.server
    serve_forever(
        app_, host, port, keep_alive=server.keep_alive_timeout, grace=server.shutdown_grace
    )
