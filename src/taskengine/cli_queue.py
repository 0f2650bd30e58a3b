"""`taskengine worker`, `submit` and `batch`: runs through the queue (and batches in-process).

Registered by `cli.py`. Errors print one line on stderr, like every other command.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from taskengine.errors import TaskEngineError

__all__ = ["register"]

HooksOpt = Annotated[
    list[str] | None,
    typer.Option("--hooks", help="Python file or module registering hooks (repeatable)."),
]
InputTypeOpt = Annotated[
    str, typer.Option("--input-type", help="Data type of the input (string, json, int …).")
]


def _config(ctx: typer.Context) -> str | None:
    value = ctx.find_root().params.get("config")
    return value if isinstance(value, str) and value else None


def _err(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


def _settings(ctx: typer.Context) -> Any:
    from taskengine.config import load_settings
    from taskengine.logs import setup_logging

    settings = load_settings(_config(ctx))
    setup_logging(settings.logging.level, settings.logging.json_format)
    return settings


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-n", min=1, help="Runs executed at once.")
    ] = 20,
    queue: Annotated[
        str | None, typer.Option("--queue", help="Queue to take runs from (default: queue.name).")
    ] = None,
    hooks: HooksOpt = None,
) -> None:
    """Execute queued runs (needs TASKENGINE_DB=postgresql://…); SIGTERM stops gracefully."""
    from taskengine.queue.worker import run_worker

    settings = _settings(ctx)
    asyncio.run(
        run_worker(settings, concurrency=concurrency, queue=queue, hook_modules=hooks or ())
    )


def submit(
    ctx: typer.Context,
    chain: Annotated[str, typer.Argument(help="Chain file (YAML or JSON).")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="Input text.")] = None,
    input_file: Annotated[
        str | None, typer.Option("--input-file", help="Read input from a file ('-' = stdin).")
    ] = None,
    input_type: InputTypeOpt = "string",
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to end and print its output.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    queue: Annotated[
        str | None, typer.Option("--queue", help="Queue to put the run in (default: queue.name).")
    ] = None,
    break_at: Annotated[
        list[str] | None, typer.Option("--break", help="Pause before this task (repeatable).")
    ] = None,
    hooks: HooksOpt = None,
) -> None:
    """Queue a run for the workers and print its id (status `queued`)."""
    from taskengine.chain import load_chain
    from taskengine.cli import _read_input

    settings = _settings(ctx)
    text = _read_input(input, input_file)
    definition = load_chain(Path(chain))
    outcome = asyncio.run(
        _submit(settings, definition, text, input_type, wait, queue, break_at or (), hooks or ())
    )
    _print_submitted(outcome, wait=wait, as_json=as_json)


async def _submit(
    settings: Any,
    definition: Any,
    text: str,
    input_type: str,
    wait: bool,
    queue: str | None,
    breakpoints: Any,
    hooks: Any,
) -> dict[str, Any]:
    from taskengine.queue.app import QueueApp, queue_conninfo
    from taskengine.queue.submit import submit_run, wait_for_run
    from taskengine.runtime import open_runtime
    from taskengine.store.base import run_view

    queue_conninfo(settings.db)
    runtime = await open_runtime(settings, hook_modules=hooks)
    async with runtime, QueueApp(settings.db, settings.queue) as qapp:
        run_id = await submit_run(
            runtime.env, qapp, definition, text, input_type,
            breakpoints=breakpoints, queue_name=queue,
        )  # fmt: skip
        if not wait:
            return {"runId": run_id, "status": "queued"}
        await wait_for_run(runtime.store, run_id)
        return run_view(await runtime.store.load_state(run_id))


def _print_submitted(view: dict[str, Any], *, wait: bool, as_json: bool) -> None:
    from taskengine.datatypes import to_display

    if as_json:
        view.pop("variables", None)
        view.pop("variableTypes", None)
        sys.stdout.write(json.dumps(view, ensure_ascii=False) + "\n")
    elif not wait:
        sys.stdout.write(view["runId"] + "\n")
    elif view["status"] == "succeeded":
        sys.stdout.write(to_display(view["output"]) + "\n")
    elif view["status"] == "paused":
        _err(f"run {view['runId']} paused before task {view['nextTask']!r}")
    if wait and view["status"] == "failed":
        message = (view.get("error") or {}).get("message") or "failed"
        raise TaskEngineError(f"run {view['runId']} failed: {message}", run_id=view["runId"])


def register(app: typer.Typer) -> None:
    """Add `worker`, `submit` and `batch` to the root command."""
    app.command("worker")(worker)
    app.command("submit")(submit)
