"""Typer options and helpers the command modules share (`--hooks`, `--config`, `--json`, …)."""

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from taskengine.cli.common import InputProblem, err, read_input
from taskengine.errors import TaskEngineError

__all__ = [
    "ConfigOpt",
    "HooksOpt",
    "command_config",
    "fails_cleanly",
    "json_opt",
    "read_input_option",
    "root_config",
]

F = TypeVar("F", bound=Callable[..., Any])

HooksOpt = Annotated[
    list[str] | None,
    typer.Option("--hooks", help="Python file or module registering hooks (repeatable)."),
]
ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Settings file (default: --config of taskengine, "
                 "TASKENGINE_CONFIG, or ./taskengine.yaml)."),
]  # fmt: skip


def json_opt(what: str) -> Any:
    """`--json`, printing `what` as JSON on stdout."""
    return typer.Option("--json", help=f"Print {what} as JSON on stdout.")


def read_input_option(text: str | None, file: str | None) -> str:
    """The input of `--input`/`--input-file`; a problem with them is a usage error (exit 2)."""
    try:
        return read_input(text, file)
    except InputProblem as exc:
        raise typer.BadParameter(exc.message, param_hint=exc.param_hint) from exc.__cause__


def root_config(ctx: typer.Context) -> str | None:
    """The --config given to the root `taskengine` command, if any."""
    value = ctx.find_root().params.get("config")
    return value if isinstance(value, str) and value else None


def command_config(ctx: typer.Context, explicit: str | None) -> str | None:
    """This command's --config, else the one given to the root `taskengine` command."""
    if explicit:
        return explicit
    return root_config(ctx) if ctx.find_root() is not ctx else None


def fails_cleanly(func: F) -> F:
    """User errors become one line on stderr and exit code 1 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TaskEngineError as exc:
            err(f"error: {exc}")
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]
