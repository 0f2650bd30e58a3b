"""Turn benchmark results into the JSON document, the printed tables and the µs/step chart."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import save_figure
from benchmarks.goals import draw_targets_chart, targets

__all__ = [
    "IMPORT_KEYS",
    "STEP_KEYS",
    "build_document",
    "draw_chart",
    "draw_targets_chart",
    "environment",
    "print_report",
    "targets",
]

ROOT = Path(__file__).resolve().parents[1]
#: keys `step_us` always has (None when a variant was skipped), plus the async LangGraph figure.
STEP_KEYS = (
    "floor",
    "taskengine_memory",
    "taskengine_sqlite",
    "langgraph_sync",
    "langgraph_sqlite",
    "burr",
    "sqlite_floor",
)
IMPORT_KEYS = ("taskengine", "langgraph", "burr")
PACKAGES = (
    "taskengine",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "burr",
    "openai",
    "aiohttp",
    "httpx2",
    "httpx",
    "pydantic",
    "matplotlib",
    "psutil",
)
LABELS = {
    "floor": "floor (plain loop)",
    "sqlite_floor": "floor + SQLite commit",
    "taskengine_memory": "taskengine (memory)",
    "taskengine_sqlite": "taskengine (SQLite)",
    "langgraph_sync": "LangGraph (sync)",
    "langgraph_async": "LangGraph (async)",
    "langgraph_sqlite": "LangGraph + SqliteSaver",
    "burr": "Burr",
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Date, machine, Python and package versions, and how busy the machine was."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": _git_commit(),
    }


def build_document(
    *,
    step: dict[str, Any] | None,
    startup: dict[str, Any] | None,
    concurrency: dict[str, Any] | None,
    config: dict[str, Any],
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results JSON: `step_us` and `import_ms` headline medians plus every detail."""
    step_us: dict[str, float | None] = dict.fromkeys(STEP_KEYS)
    step_us_chain: dict[str, float | None] = dict.fromkeys(STEP_KEYS)
    if step is not None:
        medians = step["median_us"]
        step_us.update(medians.get(step["headline_shape"], {}))
        step_us_chain.update(medians.get("chain", {}))
    import_ms: dict[str, float | None] = dict.fromkeys(IMPORT_KEYS)
    if startup is not None:
        import_ms.update({k: startup["median_ms"].get(k) for k in IMPORT_KEYS})
    doc = {
        "schema": 1,
        "environment": environment(),
        "config": config,
        "step_us": step_us,
        "step_us_chain": step_us_chain,
        "import_ms": import_ms,
        "step_overhead": step,
        "startup": startup,
        "concurrency": concurrency,
        "extras": extras or {},
    }
    doc["targets"] = targets(doc)
    return doc


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def print_report(doc: dict[str, Any], console: Any = None) -> None:
    """Tables of medians and paired ratios (rich), plus the target check."""
    from rich.console import Console
    from rich.table import Table

    # Wide enough for every column when the output goes to a file or a pipe (rich assumes 80).
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    env = doc["environment"]
    console.print(
        f"[bold]taskengine benchmarks[/] {env['date']}  {env['cpu']} × {env['cores']}  "
        f"{env['python']}  load {env['load_average']}"
    )
    step = doc.get("step_overhead")
    if step:
        shapes = list(step["median_us"])
        table = Table(
            title=f"Step overhead, µs/step (N = {step['n']:,}, medians of up to {step['reps']} repetitions)"
        )
        table.add_column("engine")
        for shape in shapes:
            table.add_column(f"{shape} µs/step", justify="right")
            table.add_column("n", justify="right")
        for name in step["median_us"][shapes[0]]:
            cells = [LABELS.get(name, name)]
            for shape in shapes:
                got = [x for x in step["samples_us"][shape][name] if x is not None]
                capped = step.get("over_cap_us", {}).get(shape, {}).get(name)
                value = _fmt(step["median_us"][shape][name], 2)
                if capped is not None and not got:
                    value = f"> {capped:,.0f} (cap)"
                cells += [value, str(len(got))]
            table.add_row(*cells)
        console.print(table)
        ratio_table = Table(title="Step overhead ratios (median of per-repetition ratios)")
        ratio_table.add_column("ratio")
        for shape in shapes:
            ratio_table.add_column(shape, justify="right")
        for key in step["ratios"][shapes[0]]:
            cells = [key]
            for shape in shapes:
                bound = step.get("ratio_bounds", {}).get(shape, {}).get(key)
                mark = {"at_least": "≥ ", "at_most": "≤ "}.get(bound or "", "")
                cells.append(mark + _fmt(step["ratios"][shape].get(key), 1) + "×")
            ratio_table.add_row(*cells)
        console.print(ratio_table)
        for shape, notes in step["notes"].items():
            for name, note in notes.items():
                console.print(f"  note: {shape}/{name}: {note}")
        for name, why in step["skipped"].items():
            console.print(f"  skipped {name}: {why}")
    conc = doc.get("concurrency")
    if conc:
        table = Table(
            title=f"LLM-bound concurrency: {conc['runs']} runs × {conc['calls_per_run']} calls, "
            f"{conc['delay_ms']:.0f} ms per answer (ideal {conc['ideal_wall_s']:.2f} s)"
        )
        for col in (
            "variant",
            "wall s",
            "runs/s",
            "CPU ms/call",
            "p50 ms",
            "p99 ms",
            "peak RSS MB",
            "wall ×",
            "RSS ×",
            "CPU ×",
        ):
            table.add_column(col, justify="left" if col == "variant" else "right")
        for name, m in conc["median"].items():
            r = conc["ratios"].get(f"{name}/baseline", {})
            table.add_row(
                name,
                _fmt(m["wall_s"], 3),
                _fmt(m["runs_per_s"], 0),
                _fmt(m["cpu_ms_per_call"], 2),
                _fmt(m["p50_ms"], 0),
                _fmt(m["p99_ms"], 0),
                _fmt(m["peak_rss_mb"], 0),
                _fmt(r.get("wall"), 2) if r else "1.00",
                _fmt(r.get("peak_rss"), 2) if r else "1.00",
                _fmt(r.get("cpu"), 2) if r else "1.00",
            )
        console.print(table)
        console.print(f"  transport: {conc['transport']}")
        for name, why in conc["skipped"].items():
            console.print(f"  skipped {name}: {why}")
    start = doc.get("startup")
    if start:
        table = Table(title=f"Start-up, ms (fresh process, median of {start['reps']})")
        table.add_column("command")
        table.add_column("ms", justify="right")
        for name, value in start["median_ms"].items():
            table.add_row(start["labels"][name], _fmt(value, 0))
        console.print(table)
    table = Table(title="Targets (issues 8 and 21)")
    for col in ("target", "measured", "limit", "met"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for t in doc["targets"]:
        if t["value"] is None and t.get("issue") == 21:
            continue  # issue 21's benchmarks run only when named (--only)
        limit = f"{'≤' if t['at_most'] else '≥'} {t['limit']:g} {t['unit']}"
        met = "—" if t["ok"] is None else ("[green]yes[/]" if t["ok"] else "[red]NO[/]")
        table.add_row(t["target"], f"{_fmt(t['value'], 2)} {t['unit']}", limit, met)
    console.print(table)


def draw_chart(doc: dict[str, Any], path: str | Path) -> Path | None:
    """A bar chart of µs/step per engine (log scale, both shapes); None without matplotlib."""
    step = doc.get("step_overhead")
    if not step:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "  no chart: matplotlib is not installed (pip install 'taskengine[bench]')",
            file=sys.stderr,
        )
        return None
    shapes = list(step["median_us"])
    names = [
        n
        for n in step["median_us"][shapes[0]]
        if any(
            step["median_us"][s][n] or step.get("over_cap_us", {}).get(s, {}).get(n) for s in shapes
        )
    ]
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=120)
    width = 0.8 / len(shapes)
    colours = {"loop": "#3b6ea8", "chain": "#9bbbe0"}
    for i, shape in enumerate(shapes):
        capped = step.get("over_cap_us", {}).get(shape, {})
        values = [step["median_us"][shape][n] or capped.get(n) or 0.0 for n in names]
        xs = [x + (i - (len(shapes) - 1) / 2) * width for x in range(len(names))]
        bars = ax.bar(
            xs, values, width, label=f"{shape} (N = {step['n']:,})", color=colours.get(shape)
        )
        for bar, value, name in zip(bars, values, names, strict=True):
            if not value:
                continue
            text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
            if (
                step["median_us"][shape][name] is None
            ):  # only a run cut off at the cap: a lower bound
                bar.set_hatch("//")
                bar.set_alpha(0.6)
                text = f"> {text}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([LABELS.get(n, n) for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("µs per step (log scale, lower is better)")
    env = doc["environment"]
    ax.set_title(
        f"Step overhead per engine — {env['date'][:10]}, {env['cpu']} × {env['cores']}, {env['python']}",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", which="major", alpha=0.3)
    return save_figure(fig, path)
