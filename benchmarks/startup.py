"""Start-up: wall time of fresh processes: imports, `taskengine --help`, `taskengine run`.

Each command runs once untimed (to warm the bytecode and file caches), then `reps` times,
interleaved; medians in ms. ``python -c pass`` is measured too, as the interpreter's own floor,
and every median is also given as a ratio to it (the same run's floor, so a busy machine moves
both). ``taskengine run`` runs a one-task `noop` chain with the default SQLite store: HOME and
the XDG directories point at a temporary directory, so the store is created there by the
warm-up run and reused by the timed ones; afterwards the store's run count is checked (every
run must have been stored there, so the figure is the stored run's). Child processes may write
bytecode caches (as an installed package has them) even when ``PYTHONDONTWRITEBYTECODE`` is set
for this process.

Issue 21's targets: ``taskengine run`` ≤ 120 ms and ``taskengine --help`` ≤ 150 ms (medians).

Two more floors show what a run's libraries cost before taskengine does anything: a probe run
records every module a ``taskengine run`` loads, and ``run_deps`` is a fresh process importing
just those outside taskengine (pydantic, PyYAML, asyncio, sqlite3 …, each standard module they
pull in); ``run_deps_no_pydantic`` imports the same list without pydantic's own packages
(pydantic, pydantic_core, annotated_types, typing_inspection; the standard modules they pull in
stay). ``taskengine run`` minus ``run_deps`` is taskengine's own share: its modules, reading and
validating the chain and settings, opening the store and running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import has_module, median

__all__ = ["TARGETS_MS", "commands", "import_profile", "run", "targets"]

#: command name -> (label, median limit in ms) from issue 21
TARGETS_MS = {
    "taskengine_run": ("taskengine run (one-task chain, default SQLite store)", 120.0),
    "taskengine_help": ("taskengine --help", 150.0),
}

ONE_TASK_CHAIN = "id: one\ntasks:\n  - id: only\n    handler: noop\n"

#: the packages only pydantic imports (`run_deps_no_pydantic` leaves them out)
PYDANTIC_PACKAGES = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection")

# Run `taskengine run` in this process and write the modules it loaded from outside taskengine.
_PROBE = """
import atexit, sys
def _write():
    with open(sys.argv[1], "w") as out:
        out.write("\\n".join(m for m in sys.modules if m.split(".")[0] != "taskengine"))
atexit.register(_write)
from taskengine.cli import main
main(["run", sys.argv[2], "--input", "hi"])
"""
# Import the modules listed in a file (those that cannot be imported alone are skipped).
_IMPORTER = """
import importlib, sys
skip = tuple(sys.argv[2:])
for name in open(sys.argv[1]).read().split():
    if name.split(".")[0] in skip:
        continue
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


def _cli() -> str | None:
    """The `taskengine` console script next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("taskengine")
    return str(beside) if beside.exists() else shutil.which("taskengine")


def commands(
    chain: str | None = None, deps: str | None = None
) -> dict[str, tuple[list[str] | None, str]]:
    """name -> (argv, or None when unavailable; what it measures).

    `chain` is the one-task chain file `taskengine run` runs (None: that command is skipped);
    `deps` the file of modules it loads from outside taskengine (None: no dependency floors).
    """
    py = sys.executable
    cli = _cli()
    return {
        "python": ([py, "-c", "pass"], "python -c pass (interpreter floor)"),
        "run_deps": (
            [py, "-c", _IMPORTER, deps] if deps else None,
            "the libraries a taskengine run imports, alone (dependency floor)",
        ),
        "run_deps_no_pydantic": (
            [py, "-c", _IMPORTER, deps, *PYDANTIC_PACKAGES] if deps else None,
            "the same without pydantic's own packages",
        ),
        "taskengine": ([py, "-c", "import taskengine"], "python -c 'import taskengine'"),
        "taskengine_help": ([cli, "--help"] if cli else None, "taskengine --help"),
        "taskengine_run": (
            [cli, "run", chain, "--input", "hi"] if cli and chain else None,
            "taskengine run one.yaml --input hi (SQLite)",
        ),
        "langgraph": (
            [py, "-c", "import langgraph.graph"] if has_module("langgraph") else None,
            "python -c 'import langgraph.graph'",
        ),
        "burr": (
            [py, "-c", "import burr.core"] if has_module("burr") else None,
            "python -c 'import burr.core'",
        ),
    }


def sandbox_env(home: Path) -> dict[str, str]:
    """This environment with HOME and XDG dirs in `home`, no store or settings overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKENGINE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["HOME"] = str(home)
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[name] = str(home / name.lower())
    return env


def _time(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> float:
    """Wall time of one process, from its start to its exit, in ms.

    `Popen.wait()` without a timeout blocks in `waitpid` and returns when the child exits. With
    a timeout (what `subprocess.run(timeout=…)` uses) it polls instead, sleeping up to 50 ms
    between polls, which rounded every figure up to the next poll (113.5, 163.5, 213.5 … ms
    after the start); the figures published before 2026-12-06 08:30 were measured that way.
    A timer kills a child that hangs.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        code = proc.wait()
    finally:
        watchdog.cancel()
    elapsed = (time.perf_counter() - started) * 1000.0
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)
    return elapsed


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


def targets(medians: dict[str, float | None]) -> list[dict[str, Any]]:
    """Issue 21's start-up targets with the measured medians and whether each is met."""
    rows = []
    for name, (label, limit) in TARGETS_MS.items():
        value = medians.get(name)
        ok = None if value is None else value <= limit
        rows.append({"target": label, "value": value, "limit": limit, "unit": "ms", "ok": ok})
    return rows


def run_imports(chain: Path, env: dict[str, str], cwd: str) -> Path | None:
    """Write the modules a `taskengine run` of `chain` loads from outside taskengine to a file
    beside it (None when the probe fails: no dependency floors then)."""
    listed = chain.with_name("run-imports.txt")
    try:
        subprocess.run(
            [sys.executable, "-c", _PROBE, str(listed), str(chain)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=120,
            env=env,
            cwd=cwd,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return listed if listed.exists() else None


def _report(medians: dict[str, float | None], log: Callable[[str], None]) -> None:
    floor = medians.get("python")
    for name, value in medians.items():
        if value is None:
            continue
        ratio = f"  ({value / floor:.1f}× the floor)" if floor and name != "python" else ""
        log(f"  {name:<20} {value:7.0f} ms{ratio}")
    run, deps, bare = (
        medians.get(k) for k in ("taskengine_run", "run_deps", "run_deps_no_pydantic")
    )
    if run is not None and deps is not None:
        log(f"  taskengine run − its libraries alone: {run - deps:.0f} ms (taskengine's own share)")
    if deps is not None and bare is not None:
        log(f"  pydantic's own packages in that floor: {deps - bare:.0f} ms")
    for row in targets(medians):
        met = "—" if row["ok"] is None else ("yes" if row["ok"] else "NO")
        value = "—" if row["value"] is None else f"{row['value']:.0f} ms"
        log(f"  target {row['target']}: {value} (≤ {row['limit']:.0f} ms) met: {met}")


def stored_runs(home: Path) -> tuple[str | None, int]:
    """The default SQLite store under the sandbox `home` and how many runs it holds."""
    import sqlite3

    found = sorted(home.rglob("taskengine.db"))
    if not found:
        return None, 0
    with sqlite3.connect(found[0]) as conn:
        (count,) = conn.execute("SELECT count(*) FROM te_runs").fetchone()
    return str(found[0].relative_to(home)), int(count)


def run(reps: int = 11, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every available command `reps` times, interleaved; returns samples and medians (ms)."""
    with tempfile.TemporaryDirectory(prefix="taskengine-startup-") as tmp:
        home = Path(tmp)
        chain = home / "one.yaml"
        chain.write_text(ONE_TASK_CHAIN, encoding="utf-8")
        env = sandbox_env(home)
        deps = run_imports(chain, env, tmp) if _cli() else None
        table = commands(str(chain), str(deps) if deps else None)
        active = {name: argv for name, (argv, _label) in table.items() if argv is not None}
        skipped = {name: "not installed" for name, (argv, _label) in table.items() if argv is None}
        samples: dict[str, list[float]] = {name: [] for name in table}
        for argv in active.values():
            _time(argv, env, tmp)  # warm-up (and the run store's creation)
        names = list(active)
        for rep in range(reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                samples[name].append(_time(active[name], env, tmp))
        store_file, store_runs = stored_runs(home)
    expected_runs = reps + 1 + (deps is not None)  # the probe's run is stored too
    if "taskengine_run" in active and store_runs != expected_runs:
        raise RuntimeError(
            f"taskengine run stored {store_runs} runs in the sandbox's default store "
            f"({store_file}), expected {expected_runs}: it did not use the default SQLite store"
        )
    medians = {name: median(values) for name, values in samples.items()}
    _report(medians, log)
    if store_file:
        log(f"  store: {store_file} in the sandbox HOME, {store_runs} runs")
    return {
        "reps": reps,
        "labels": {name: label for name, (_argv, label) in table.items()},
        "samples_ms": samples,
        "median_ms": medians,
        "skipped": skipped,
        "store": {"file": store_file, "runs": store_runs},
        "targets": targets(medians),
        "taskengine_import_top": import_profile(),
    }
