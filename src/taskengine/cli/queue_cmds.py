"""`taskengine worker`, `submit` and `batch`: runs through the queue (and batches in-process).

Registered by `cli.root`. Errors print one line on stderr, like every other command.
"""

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from taskengine.cli.common import err, run_async
from taskengine.cli.options import HooksOpt, read_input_option, root_config
from taskengine.errors import TaskEngineError

__all__ = ["register"]

InputTypeOpt = Annotated[
    str, typer.Option("--input-type", help="Data type of the input (string, json, int …).")
]


def _settings(ctx: typer.Context) -> Any:
    from taskengine.config import load_settings
    from taskengine.logs import setup_logging

    settings = load_settings(root_config(ctx))
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
    from taskengine.workers.worker import run_worker

    settings = _settings(ctx)
    run_async(run_worker(settings, concurrency=concurrency, queue=queue, hook_modules=hooks or ()))


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

    settings = _settings(ctx)
    text = read_input_option(input, input_file)
    definition = load_chain(Path(chain))
    outcome = run_async(
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
    from taskengine.runtime import open_runtime
    from taskengine.store.base import run_view
    from taskengine.workers.app import QueueApp, queue_conninfo
    from taskengine.workers.submit import submit_run, wait_for_run

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
        err(f"run {view['runId']} paused before task {view['nextTask']!r}")
    if wait and view["status"] == "failed":
        message = (view.get("error") or {}).get("message") or "failed"
        raise TaskEngineError(f"run {view['runId']} failed: {message}", run_id=view["runId"])


def batch(
    ctx: typer.Context,
    chain: Annotated[str, typer.Argument(help="Chain file (YAML or JSON).")],
    inputs: Annotated[
        Path, typer.Option("--inputs", help='JSON lines: "text" or {"key": …, "input": …}.')
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Results file (JSON lines); its succeeded keys are skipped."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-n", min=1, help="Runs at once (default 10; 200 with --queue)."
        ),
    ] = None,
    through_queue: Annotated[
        bool, typer.Option("--queue", help="Run through the workers instead of in-process.")
    ] = False,
    input_type: InputTypeOpt = "string",
    hooks: HooksOpt = None,
) -> None:
    """Run a chain on every line of a JSONL file; one JSON result line per input."""
    from taskengine.batch import read_done, read_inputs
    from taskengine.chain import load_chain

    settings = _settings(ctx)
    definition = load_chain(Path(chain))
    items = read_inputs(inputs)
    done = read_done(out)
    todo = [item for item in items if item.key not in done]
    limit = concurrency or (200 if through_queue else 10)
    tally = run_async(
        _batch(settings, definition, todo, input_type, limit, through_queue, out, hooks or ())
    )
    tally.skipped = len(items) - len(todo)
    elapsed = max(1e-9, time.monotonic() - tally.started)
    err(
        f"{tally.done} succeeded, {tally.failed} failed, {tally.skipped} skipped "
        f"(already done) in {elapsed:.1f} s ({tally.finished / elapsed:.1f} runs/s)"
    )
    if tally.failed:
        raise typer.Exit(1)


async def _batch(
    settings: Any,
    definition: Any,
    todo: list[Any],
    input_type: str,
    concurrency: int,
    through_queue: bool,
    out: Path | None,
    hooks: Any,
) -> Any:
    from contextlib import AsyncExitStack

    from taskengine.batch import BatchTally, run_batch
    from taskengine.runtime import open_runtime

    tally = BatchTally(total=len(todo))
    async with AsyncExitStack() as stack:
        queue = None
        if through_queue:
            from taskengine.workers.app import QueueApp, queue_conninfo

            queue_conninfo(settings.db)
        runtime = await open_runtime(settings, hook_modules=hooks, print_fn=err)
        await stack.enter_async_context(runtime)
        if through_queue:
            queue = await stack.enter_async_context(QueueApp(settings.db, settings.queue))
        sink = stack.enter_context(_results(out))
        bar = stack.enter_context(_BatchProgress(tally))

        def on_result(row: dict[str, Any]) -> None:
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()
            bar.update()

        await run_batch(
            runtime.env, definition, todo, input_type=input_type, concurrency=concurrency,
            queue=queue, on_result=on_result, tally=tally,
        )  # fmt: skip
    return tally


def _results(out: Path | None) -> Any:
    from contextlib import nullcontext

    if out is None:
        return nullcontext(sys.stdout)
    return out.open("a", encoding="utf-8")


class _BatchProgress:
    """A Rich progress bar on stderr: done, failed, running, rate and ETA (terminals only)."""

    def __init__(self, tally: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, ProgressColumn, TimeRemainingColumn
        from rich.text import Text

        class Counts(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text.from_markup(
                    f"{tally.finished}/{tally.total}  [green]{tally.done} done[/]  "
                    f"[red]{tally.failed} failed[/]  {tally.running} running  "
                    f"{tally.rate():.1f} runs/s  ETA"
                )

        self.tally = tally
        console = Console(stderr=True)
        self.progress = Progress(
            BarColumn(),
            Counts(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
            refresh_per_second=4,
        )
        self.task = self.progress.add_task("batch", total=tally.total)

    def update(self) -> None:
        self.progress.update(self.task, completed=self.tally.finished)

    def __enter__(self) -> "_BatchProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update()
        self.progress.stop()


def register(app: typer.Typer) -> None:
    """Add `worker`, `submit` and `batch` to the root command."""
    app.command("worker")(worker)
    app.command("submit")(submit)
    app.command("batch")(batch)
