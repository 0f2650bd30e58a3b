"""The Typer app: the root options and every command group, and running it for `entry.main`.

Imported only when a command needs Typer (all but the plain `taskengine run`, see `fast_run`).
"""

import sys
from typing import Annotated

import typer

from taskengine.cli.common import STATE, err

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - older typer raises click's own
    from click import exceptions as _click_exceptions  # type: ignore[no-redef]

__all__ = ["app", "run_typer"]


def _click(name: str) -> tuple[type[BaseException], ...]:
    """Typer's class `name`, plus Click's own when something imported Click (uvicorn, a hook)."""
    modules = (_click_exceptions, sys.modules.get("click.exceptions"))
    classes = {getattr(module, name, None) for module in modules}
    if name == "Exit":
        classes.add(typer.Exit)
    return tuple(c for c in classes if c is not None)


app = typer.Typer(
    name="taskengine",
    help="Run declarative LLM task chains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from taskengine import __version__

        sys.stdout.write(f"taskengine {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", help="Settings file (default: TASKENGINE_CONFIG or ./taskengine.yaml)."
        ),
    ] = None,
) -> None:
    STATE["debug"] = debug
    STATE["config"] = config


def _mount() -> None:
    """Every command, in the order `taskengine --help` lists them (commands, then groups)."""
    from taskengine.cli import mcp, queue_cmds
    from taskengine.cli.config import config_app
    from taskengine.cli.definitions import graph, schema, validate
    from taskengine.cli.run_cmds import resume, run
    from taskengine.cli.runs import runs_app
    from taskengine.cli.secret_cmds import secrets_app
    from taskengine.cli.serve import serve

    for command in (run, resume, validate, schema, graph, serve):
        app.command()(command)
    app.add_typer(runs_app, name="runs")
    app.add_typer(config_app, name="config")
    app.add_typer(secrets_app, name="secrets")
    mcp.register(app)
    queue_cmds.register(app)


_mount()


def run_typer(args: list[str]) -> None:
    """Run the Typer app on `args`; Click's usage errors print their usage message (exit 2)."""
    from taskengine.cli.lean_rich import import_rich_utils

    import_rich_utils()
    try:
        code = app(args=args, prog_name="taskengine", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except _click("Exit") as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except _click("ClickException") as exc:
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except _click("Abort"):
        err("aborted")
        sys.exit(130)
