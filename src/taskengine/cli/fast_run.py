"""`taskengine run CHAIN …` without building the Typer app: the common spelling, parsed by hand.

Typer imports Rich and builds a pydantic adapter for every option before it runs a command; for
a one-task chain that was most of the process's time. `parse_run_args` accepts only the plain
forms below (`--opt VALUE`, `--opt=VALUE`, flags, one CHAIN) and returns None for anything else
(help, usage errors, repeated options, values that look like options), and the caller then gives
the same arguments to Typer, so every message and exit code stays exactly Typer's.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from taskengine.cli.common import STATE, InputProblem, err, read_input

if TYPE_CHECKING:
    from taskengine.cli.running import RunRequest

__all__ = ["parse_run_args", "run_fast"]

FLAG, VALUE, LIST = "flag", "value", "list"

#: option spelling -> (field, kind); the root group's options, then those of `run`
ROOT_OPTIONS = {"--debug": ("debug", FLAG), "--config": ("config", VALUE)}
RUN_OPTIONS = {
    "--input": ("input", VALUE),
    "-i": ("input", VALUE),
    "--input-file": ("input_file", VALUE),
    "--input-type": ("input_type", VALUE),
    "--json": ("as_json", FLAG),
    "--hooks": ("hooks", LIST),
    "--break": ("break_at", LIST),
    "--no-store": ("no_store", FLAG),
    "--stream": ("stream", FLAG),
    "--config": ("config", VALUE),
    "-c": ("config", VALUE),
}


def _take_option(
    args: Sequence[str], i: int, table: dict[str, tuple[str, str]], into: dict
) -> int | None:
    """Store the option at args[i] in `into`; the index after it, or None if it is not plain."""
    name, eq, attached = args[i].partition("=") if args[i].startswith("--") else (args[i], "", "")
    if name not in table:
        return None
    field, kind = table[name]
    if kind == FLAG:
        if eq or field in into:
            return None
        into[field] = True
        return i + 1
    if eq:
        value, after = attached, i + 1
    elif i + 1 < len(args) and (args[i + 1] == "-" or not args[i + 1].startswith("-")):
        value, after = args[i + 1], i + 2
    else:  # a missing value, or one Click might read as an option: Typer decides
        return None
    if kind == LIST:
        into.setdefault(field, []).append(value)
    elif field in into:
        return None
    else:
        into[field] = value
    return after


def parse_run_args(args: Sequence[str]) -> tuple[dict, dict] | None:
    """(root options, run options) of `[--debug] [--config F] run CHAIN [OPTIONS]`, else None."""
    root: dict = {}
    i = 0
    while i < len(args) and args[i] != "run":
        step = _take_option(args, i, ROOT_OPTIONS, root)
        if step is None:
            return None
        i = step
    if i == len(args):
        return None
    options: dict = {}
    i += 1
    while i < len(args):
        token = args[i]
        if token.startswith("-") and token != "-":
            step = _take_option(args, i, RUN_OPTIONS, options)
            if step is None:
                return None
            i = step
        elif token == "-" or "chain" in options:
            return None
        else:
            options["chain"] = token
            i += 1
    return (root, options) if "chain" in options else None


def _request(options: dict) -> RunRequest:
    """The run to execute; reads the input (InputProblem when a file cannot be read)."""
    from taskengine.cli.running import RunRequest

    return RunRequest(
        chain=options["chain"],
        text=read_input(options.get("input"), options.get("input_file")),
        input_type=options.get("input_type", "string"),
        as_json=options.get("as_json", False),
        hooks=tuple(options.get("hooks", ())),
        break_at=tuple(options.get("break_at", ())),
        no_store=options.get("no_store", False),
        stream=options.get("stream", False),
        config=options.get("config"),
    )


def run_fast(args: Sequence[str]) -> bool:
    """Run `taskengine run …` if `args` are in the plain form; False means: ask Typer."""
    if "_TASKENGINE_COMPLETE" in os.environ:  # a shell asking Click for completions
        return False
    parsed = parse_run_args(args)
    if parsed is None:
        return False
    root, options = parsed
    if "input" in options and "input_file" in options:
        return False
    STATE["debug"] = root.get("debug", False)
    STATE["config"] = root.get("config")
    from taskengine.cli.running import execute_run

    try:
        _like_typer(lambda: execute_run(_request(options)))
    except InputProblem:  # a file that cannot be read: Typer reads it again and reports it
        return False
    return True


def _like_typer(command: Callable[[], None]) -> None:
    """Run; Ctrl-C, EOF and a closed pipe end the process as Typer's command runner ends it."""
    try:
        command()
    except EOFError:
        sys.stderr.write("\n")
        sys.stderr.flush()
        err("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        try:  # typer >= 0.20 vendors click
            from typer._click.utils import PacifyFlushWrapper
        except ImportError:  # pragma: no cover
            from click.utils import PacifyFlushWrapper  # type: ignore[no-redef]

        sys.stdout = PacifyFlushWrapper(sys.stdout)
        sys.stderr = PacifyFlushWrapper(sys.stderr)
        sys.exit(1)
