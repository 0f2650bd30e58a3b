"""The `taskengine` command line: run, validate, schema, graph, resume, runs, serve, config, secrets.

Every user-caused failure prints one line on stderr and exits non-zero; `--debug` shows the
traceback instead. `main` is the console script; `app` (the Typer app) is built on first use,
so a plain `taskengine run` never imports Typer or Rich.

Modules: `entry` (main), `fast_run` (the plain `run`, parsed by hand), `running` and `common`
(shared, Typer-free), `startup` (a run's loading phase: no garbage collection, no pydantic
plugin search when none is installed), `root` (the Typer app), `lean_rich` (Typer's Rich help
without the Rich modules it does not use) and one module per command group. The Typer
modules evaluate their annotations at import (no `from __future__ import annotations`), so
Typer does not re-evaluate every option's annotation string when it builds `--help`.
"""

from __future__ import annotations

from typing import Any

from taskengine.cli.entry import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from taskengine.cli.root import app

        return app
    if name == "_RUN_STATUSES":
        from taskengine.cli.runs import _RUN_STATUSES

        return _RUN_STATUSES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
