"""`taskengine run` and `taskengine resume` as Typer commands (the plain `run` skips Typer)."""

import json
from typing import Annotated, Any

import typer

from taskengine.cli.common import config_path, err, setup_logging
from taskengine.cli.options import ConfigOpt, HooksOpt, json_opt, read_input_option
from taskengine.cli.running import (
    RunRequest,
    execute_run,
    print_output,
    run_reporting,
)

__all__ = ["resume", "run"]


def run(
    chain: Annotated[str, typer.Argument(help="Chain file (YAML or JSON).")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="Input text.")] = None,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input-file", help="Read input from a file ('-' = stdin; one final newline dropped)."
        ),
    ] = None,
    input_type: Annotated[
        str,
        typer.Option(
            "--input-type",
            help="Data type of the input (string, json, int, chat_history, openai_chat …).",
        ),
    ] = "string",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with runId, output, state.")
    ] = False,
    hooks: HooksOpt = None,
    break_at: Annotated[
        list[str] | None, typer.Option("--break", help="Pause before this task (repeatable).")
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not record the run (no resume).")
    ] = False,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print model tokens to stderr as they arrive.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Run a chain and print its output."""
    request = RunRequest(
        chain=chain,
        text=read_input_option(input, input_file),
        input_type=input_type,
        as_json=as_json,
        hooks=tuple(hooks or ()),
        break_at=tuple(break_at or ()),
        no_store=no_store,
        stream=stream,
        config=config,
    )
    execute_run(request)


def _parse_set(items: list[str]) -> dict[str, Any]:
    """`--set VAR=VALUE` pairs; VALUE is JSON when it parses as JSON, else the text itself."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected VAR=VALUE, got {item!r}", param_hint="--set")
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw
    return values


def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (see `taskengine runs list`).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="VAR=VALUE to change before continuing (repeatable; VALUE may be JSON)."
        ),
    ] = None,
    as_json: Annotated[bool, json_opt("the run (runId, output, state, status)")] = False,
    hooks: HooksOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Continue a paused, failed or interrupted run from its last checkpoint."""
    from taskengine.runtime import open_runtime

    values = _parse_set(set_ or [])

    async def go() -> Any:
        runtime = await open_runtime(
            config_path=config_path(config), hook_modules=hooks or (), print_fn=err
        )
        setup_logging(runtime.settings)
        async with runtime:
            return await runtime.env.resume(run_id, set_vars=values or None)

    print_output(run_reporting(go(), as_json), as_json)
