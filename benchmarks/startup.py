"""Start-up: wall time of importing each engine, and of `taskengine --help`, in fresh processes.

Each command runs once untimed (to warm the bytecode and file caches), then `reps` times,
interleaved; medians in ms. ``python -c pass`` is measured too, as the interpreter's own floor.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import has_module, median

__all__ = ["commands", "import_profile", "run"]


def _cli() -> str | None:
    """The `taskengine` console script next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("taskengine")
    return str(beside) if beside.exists() else shutil.which("taskengine")


def commands() -> dict[str, tuple[list[str] | None, str]]:
    """name -> (argv, or None when unavailable; what it measures)."""
    py = sys.executable
    cli = _cli()
    return {
        "python": ([py, "-c", "pass"], "python -c pass (interpreter floor)"),
        "taskengine": ([py, "-c", "import taskengine"], "python -c 'import taskengine'"),
        "taskengine_help": ([cli, "--help"] if cli else None, "taskengine --help"),
        "langgraph": (
            [py, "-c", "import langgraph.graph"] if has_module("langgraph") else None,
            "python -c 'import langgraph.graph'",
        ),
        "burr": (
            [py, "-c", "import burr.core"] if has_module("burr") else None,
            "python -c 'import burr.core'",
        ),
    }


def _time(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120
    )
    return (time.perf_counter() - started) * 1000.0


def import_profile(module: str = "taskengine", top: int = 10) -> list[dict[str, Any]]:
    """The modules with the largest cumulative import time (`python -X importtime`)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = (
            part.strip() for part in line[len("import time:") :].split("|")
        )
        rows.append(
            {
                "module": name,
                "cumulative_ms": int(cumulative_us) / 1000.0,
                "self_ms": int(_self_us) / 1000.0,
            }
        )
    rows.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    return rows[:top]


def run(reps: int = 7, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every available command `reps` times, interleaved; returns samples and medians (ms)."""
    table = commands()
    active = {name: argv for name, (argv, _label) in table.items() if argv is not None}
    skipped = {name: "not installed" for name, (argv, _label) in table.items() if argv is None}
    samples: dict[str, list[float]] = {name: [] for name in table}
    for argv in active.values():
        _time(argv)  # warm-up
    names = list(active)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            samples[name].append(_time(active[name]))
    medians = {name: median(values) for name, values in samples.items()}
    log("  " + ", ".join(f"{n}={m:.0f} ms" for n, m in medians.items() if m is not None))
    return {
        "reps": reps,
        "labels": {name: label for name, (_argv, label) in table.items()},
        "samples_ms": samples,
        "median_ms": medians,
        "skipped": skipped,
        "taskengine_import_top": import_profile(),
    }
