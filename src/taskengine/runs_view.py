"""`taskengine runs list|show`: stored runs as tables or JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from taskengine.engine.record import CapturedStateUnit

__all__ = ["list_runs_cmd", "run_summary", "show_run_cmd"]


def run_summary(record: Any) -> dict[str, Any]:
    """The JSON shape of a run in listings (shared with `GET /runs`)."""
    from taskengine.store.base import run_summary as summary

    return summary(record)


async def _open(config: str | None) -> Any:
    from taskengine.config import load_settings
    from taskengine.store import open_store

    settings = load_settings(config)
    return await open_store(settings.db) if settings.db else await open_store()


def list_runs_cmd(config: str | None, *, as_json: bool, limit: int, status: str | None) -> None:
    async def go() -> list[Any]:
        store = await _open(config)
        try:
            page = await store.list_runs(limit=limit, status=status)
            return list(page.items)
        finally:
            await store.aclose()

    records = asyncio.run(go())
    if as_json:
        sys.stdout.write(json.dumps([run_summary(r) for r in records], ensure_ascii=False) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="runs", show_lines=False)
    table.add_column("run id", no_wrap=True, overflow="fold")
    for col in ("chain", "status", "steps", "updated"):
        table.add_column(col)
    for r in records:
        table.add_row(
            _plain(r.run_id),
            _plain(r.chain_id),
            _status(r.status),
            str(r.step_count),
            r.updated_at.strftime("%Y-%m-%d %H:%M:%S") if r.updated_at else "",
        )
    Console().print(table)


def _plain(value: Any, limit: int | None = None, style: str = "") -> Any:
    """Stored text as a rich `Text`: brackets in it are shown, never read as markup."""
    from rich.text import Text

    text = str(value)
    return Text(text[:limit] if limit else text, style=style)


def _status(status: str) -> Any:
    from rich.text import Text

    colour = {
        "succeeded": "green",
        "failed": "red",
        "paused": "yellow",
        "interrupted": "magenta",
    }.get(status)
    return Text(status, style=colour or "")


def show_run_cmd(config: str | None, run_id: str, *, as_json: bool) -> None:
    async def go() -> tuple[Any, Any]:
        store = await _open(config)
        try:
            record = await store.get_run(run_id)
            state = await store.load_state(run_id)
            return record, state
        finally:
            await store.aclose()

    record, state = asyncio.run(go())
    from taskengine.store.base import run_view

    if as_json:
        sys.stdout.write(json.dumps(run_view(state), ensure_ascii=False, default=str) + "\n")
        return
    from rich.console import Console

    console = Console(highlight=False)
    console.print(
        _plain(record.run_id, style="bold"),
        _plain(f"chain {record.chain_id}"),
        _status(record.status),
    )
    recorded = bool((record.chain or {}).get("debug"))
    console.print(_steps_table(state.history, recorded))
    if state.history and not recorded:
        console.print(
            _plain(
                f"step inputs and outputs are not recorded: chain {record.chain_id!r} has "
                "debug: false (as in the Go engine); set debug: true in the chain to keep them",
                style="dim",
            )
        )
    _print_outcome(console, record)


def _steps_table(steps: list[dict[str, Any]], recorded: bool) -> Any:
    from rich.table import Table

    table = Table(show_lines=False)
    columns = ["#", "task", "handler", "transition", "ms", "error"]
    for col in columns + (["output"] if recorded else []):
        table.add_column(col)
    for i, step in enumerate(steps, 1):
        err = (step.get("error") or {}).get("error") or ""
        row = [
            str(i),
            _plain(step.get("taskID", "")),
            _plain(step.get("taskHandler", "")),
            _plain(step.get("transition", ""), 40),
            f"{CapturedStateUnit.from_dict(step).duration_ms:.1f}",
            _plain(err, 200, style="red"),
        ]
        if recorded:
            row.append(_plain(step.get("output", ""), 60))
        table.add_row(*row)
    return table


def _print_outcome(console: Any, record: Any) -> None:
    totals = record.totals or {}
    if totals:
        parts = [
            f"{totals.get('total_tokens', 0):.0f} tokens",
            f"{totals.get('llm_ms', 0):.0f} ms in models",
        ]
        if "cost" in totals:
            parts.append(f"cost {totals['cost']:.6g}")
        console.print("totals: " + ", ".join(parts))
    if record.error:
        console.print(_plain("error:", style="red"), _plain(record.error.get("message")))
    elif record.output is not None:
        console.print(_plain(f"output: {record.output}"))
