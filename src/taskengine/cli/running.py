"""Executing `taskengine run` and `resume`: progress on stderr, the output on stdout.

Free of Typer and Click, so the fast path (`fast_run`) and the Typer commands (`run_cmds`) share
it; Rich is imported only for the live status line, and only on a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskengine.cli.common import config_path, err, run_async, setup_logging
from taskengine.errors import TaskEngineError

__all__ = ["RunRequest", "execute_run", "print_output", "run_reporting"]


@dataclass(slots=True)
class RunRequest:
    """The options of `taskengine run`, once the input text has been read."""

    chain: str
    text: str
    input_type: str = "string"
    as_json: bool = False
    hooks: Sequence[str] = ()
    break_at: Sequence[str] = ()
    no_store: bool = False
    stream: bool = False
    config: str | None = None


def run_reporting(coro: Any, as_json: bool) -> Any:
    """Run; with --json a failed run still prints its JSON (status, error, steps) on stdout."""
    try:
        return run_async(coro)
    except TaskEngineError as exc:
        if as_json and exc.run_result is not None:
            sys.stdout.write(json.dumps(exc.run_result.to_dict(), ensure_ascii=False) + "\n")
        raise


class DeltaStream:
    """`--stream`: model tokens on stderr, each step's text ending on its own line."""

    def __init__(self) -> None:
        self.open_line = False

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "delta" and event["delta"]:
            sys.stderr.write(event["delta"])
            sys.stderr.flush()
            self.open_line = not event["delta"].endswith("\n")
        elif kind in ("step_start", "step_end", "run_end") and self.open_line:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.open_line = False


class Progress:
    """On a terminal: a live status line naming the running task and the steps done so far."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.status = self.console.status("starting…")
        self.steps = 0

    def __enter__(self) -> Progress:
        self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.stop()

    def print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "step_start":
            retry = f", attempt {event['attempt']}" if event["attempt"] > 1 else ""
            from rich.markup import escape

            self.status.update(
                f"step {self.steps + 1}: [bold]{escape(event['taskID'])}[/bold] "
                f"({escape(event['handler'])}{retry})"
            )
        elif event["type"] == "step_end":
            self.steps += 1


def print_output(result: Any, as_json: bool) -> None:
    """The run's output (or its JSON record) on stdout; a paused run says how to continue."""
    from taskengine.datatypes import to_display

    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(to_display(result.output) + "\n")
        if result.status == "paused":
            err(
                f"paused before task {result.paused_at!r}; continue with: taskengine resume {result.run_id}"
            )


def execute_run(request: RunRequest) -> None:
    """Load the chain, run it over the input and print the result."""
    from taskengine.cli.startup import loading

    with loading():
        from taskengine.chain import load_chain
        from taskengine.datatypes import DataType

        definition = load_chain(Path(request.chain))
        dtype = DataType.from_string(request.input_type)
    progress = Progress() if sys.stderr.isatty() and not request.stream else None

    async def go() -> Any:
        from taskengine.runtime import open_runtime

        with loading():
            runtime = await open_runtime(
                config_path=config_path(request.config),
                use_store=not request.no_store,
                hook_modules=request.hooks,
                print_fn=progress.print if progress else err,
            )
        setup_logging(runtime.settings)
        on_event: Callable[[dict[str, Any]], None] | None = None
        if request.stream:
            on_event = DeltaStream().on_event
        elif progress is not None:
            on_event = progress.on_event
        async with runtime:
            return await runtime.env.exec_env(
                definition, request.text, dtype, breakpoints=request.break_at, on_event=on_event
            )

    if progress is None:
        print_output(run_reporting(go(), request.as_json), request.as_json)
        return
    with progress:
        result = run_reporting(go(), request.as_json)
    print_output(result, request.as_json)
