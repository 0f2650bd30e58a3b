"""`taskengine runs list` and `taskengine runs show`: the runs recorded in the store."""

from typing import Annotated

import typer

from taskengine.cli.common import config_path
from taskengine.cli.options import ConfigOpt, json_opt

__all__ = ["runs_app"]

runs_app = typer.Typer(help="Inspect stored runs.", no_args_is_help=True)

#: the statuses `runs list --status` accepts (store.base.RUN_STATUSES, without importing the store)
_RUN_STATUSES = ("pending", "queued", "running", "paused", "succeeded", "failed", "interrupted")


@runs_app.command("list")
def runs_list(
    as_json: Annotated[bool, json_opt("the runs (runId, chainId, status, createdAt …)")] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many runs to show.")
    ] = 20,
    status: Annotated[
        str | None,
        typer.Option("--status", help=f"Only runs with this status ({', '.join(_RUN_STATUSES)})."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """List recent runs, newest first."""
    from taskengine.runs_view import list_runs_cmd

    if status is not None and status not in _RUN_STATUSES:
        raise typer.BadParameter(
            f"unknown status {status!r}; one of: {', '.join(_RUN_STATUSES)}", param_hint="--status"
        )
    list_runs_cmd(config_path(config), as_json=as_json, limit=limit, status=status)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (see `taskengine runs list`).")],
    as_json: Annotated[
        bool, json_opt("the run with its steps, variables, output and error")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Show one run with its step history."""
    from taskengine.runs_view import show_run_cmd

    show_run_cmd(config_path(config), run_id, as_json=as_json)
