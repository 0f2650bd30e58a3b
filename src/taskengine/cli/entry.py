"""The `taskengine` entry point: one line on stderr and a non-zero exit for every failure.

A plain `taskengine run CHAIN …` goes straight to the engine (`fast_run`); everything else,
including help and usage errors, goes through the Typer app in `root`, imported only then.
"""

from __future__ import annotations

import sys

from taskengine.cli.common import err
from taskengine.errors import TaskEngineError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command, turning errors into one line on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        from taskengine.cli.fast_run import run_fast

        if not run_fast(args):
            from taskengine.cli.root import run_typer

            run_typer(args)
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(130)
    except TaskEngineError as exc:
        if debug:
            raise
        message = str(exc)
        if exc.run_id and exc.run_id not in message:
            message += f" (run {exc.run_id}: taskengine runs show {exc.run_id})"
        err(f"error: {message}")
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        err(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(70)
