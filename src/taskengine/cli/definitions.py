"""`taskengine validate`, `schema` and `graph`: commands about chain files, not runs."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from taskengine.cli.common import config_path, err, run_async
from taskengine.cli.options import ConfigOpt

__all__ = ["graph", "schema", "validate"]


def validate(
    chains: Annotated[list[str], typer.Argument(help="Chain files to check.")],
    hooks: Annotated[
        list[str] | None,
        typer.Option(
            "--hooks",
            help="Also check hook and tool names against these hook files or modules "
            "(repeatable; remote_hooks of the settings count too).",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Check chain files; print every problem with its field path (exit 1 on errors)."""
    from taskengine.chain import parse_chain
    from taskengine.errors import ChainLoadError

    failed = False
    parsed: list[tuple[str, Any, list[Any]]] = []
    for path in chains:
        try:
            chain, problems = parse_chain(Path(path))
        except ChainLoadError as exc:
            err(f"{path}: error: {exc.message}")
            failed = True
            continue
        parsed.append((path, chain, problems))
    if hooks:
        _add_hook_problems(parsed, hooks, config_path(config))
    for path, chain, problems in parsed:
        failed = _report(path, chain, problems) or failed
    if failed:
        raise typer.Exit(1)


def _report(path: str, chain: Any, problems: list[Any]) -> bool:
    """Print one chain's problems, or its `ok` line; True when it has errors."""
    for problem in problems:
        if problem.severity != "info":
            err(f"{path}: {problem}")
    if any(p.severity == "error" for p in problems):
        return True
    warnings = sum(1 for p in problems if p.severity == "warning")
    tasks = len(chain.tasks) if chain else 0
    sys.stdout.write(
        f"{path}: ok ({tasks} tasks" + (f", {warnings} warnings" if warnings else "") + ")\n"
    )
    return False


def _add_hook_problems(
    parsed: list[tuple[str, Any, list[Any]]], hook_modules: list[str], config: str | None
) -> None:
    """`validate --hooks`: append unknown hooks and tools to each loadable chain's problems."""
    from taskengine.hooks.check import check_chain_hooks
    from taskengine.runtime import open_runtime

    async def go() -> None:
        runtime = await open_runtime(config_path=config, use_store=False, hook_modules=hook_modules)
        async with runtime:
            for _, chain, problems in parsed:
                if chain is not None:
                    problems.extend(await check_chain_hooks(chain, runtime.hooks))

    run_async(go())


def schema() -> None:
    """Print the JSON Schema of chain files (for editor autocompletion)."""
    from taskengine.chain import chain_json_schema

    sys.stdout.write(json.dumps(chain_json_schema(), indent=2) + "\n")


def graph(chain: Annotated[str, typer.Argument(help="Chain file.")]) -> None:
    """Print the chain's state machine as a Mermaid flowchart."""
    from taskengine.chain import load_chain
    from taskengine.chain.mermaid import to_mermaid

    sys.stdout.write(to_mermaid(load_chain(chain)) + "\n")
