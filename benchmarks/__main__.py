"""Run the benchmarks: ``python -m benchmarks [--quick] [--json PATH] [--chart PATH] [--only NAME] [--publish]``.

Comparisons: ``step`` (step overhead), ``concurrency`` (LLM-bound concurrency), ``startup``
(import and CLI start-up). ``--only`` also accepts the stand-alone scripts ``transport``,
``store_checkpoint``, ``server_load`` and ``pg_concurrency`` (run as subprocesses, their output kept in ``extras``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import ROOT, concurrency, report, startup, step_overhead, worker_env

RESULTS = ROOT / "benchmarks" / "results"
PUBLISHED = ROOT / "docs" / "benchmarks"
COMPARISONS = ("step", "concurrency", "startup")
SCRIPTS = ("transport", "store_checkpoint", "server_load", "pg_concurrency")
#: scripts that write their figures as JSON when given `--json-out PATH` (kept under `figures`)
FIGURE_SCRIPTS = ("server_load", "pg_concurrency")
ALIASES = {"step_overhead": "step", "steps": "step", "import": "startup"}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="reduced step overhead (N=1000) and start-up; no concurrency unless --only names it",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="write the results JSON here (always also results/latest.json)",
    )
    parser.add_argument(
        "--chart", metavar="PATH", default=str(RESULTS / "step_us.png"), help="µs/step chart (PNG)"
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        default="",
        help=f"comma-separated: {', '.join(COMPARISONS + SCRIPTS)}",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also copy the chart and JSON to docs/benchmarks/ (committed)",
    )
    parser.add_argument("--n", type=int, help="steps per run (default 10000; --quick 1000)")
    parser.add_argument("--reps", type=int, help="step-overhead repetitions (default 5; --quick 3)")
    parser.add_argument(
        "--budget", type=float, help="seconds of timed runs per variant before it stops repeating"
    )
    parser.add_argument(
        "--cap",
        type=float,
        help="seconds after which one run is interrupted (a lower bound is kept)",
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: print, chart (and --publish) the results saved in PATH",
    )
    parser.add_argument("--variants", default="", help="comma-separated step-overhead variants")
    parser.add_argument("--runs", type=int, help="concurrent runs (default 500; --quick 100)")
    parser.add_argument(
        "--conc-reps", type=int, help="concurrency repetitions (default 9; --quick 1)"
    )
    return parser.parse_args(argv)


def _selection(only: str) -> tuple[list[str], list[str]]:
    names = [ALIASES.get(n.strip(), n.strip()) for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPARISONS + SCRIPTS]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(COMPARISONS + SCRIPTS)}"
        )
    if not names:
        return list(COMPARISONS), []
    return [n for n in names if n in COMPARISONS], [n for n in names if n in SCRIPTS]


def _variants(text: str) -> list[str] | None:
    """The step-overhead variants asked for (None: all), checked before anything is measured."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in step_overhead.VARIANTS]
    if unknown:
        raise SystemExit(
            f"unknown variant(s): {', '.join(unknown)}; choose from {', '.join(step_overhead.VARIANTS)}"
        )
    return names or None


def _load(path: str) -> dict[str, Any]:
    """A saved results document, or one line saying why it cannot be read."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--from-json {path}: cannot read a results document: {exc}") from None
    if not isinstance(doc, dict) or "environment" not in doc:
        raise SystemExit(
            f"--from-json {path}: not a results document written by python -m benchmarks"
        )
    return doc


def _run_script(name: str) -> dict[str, Any]:
    """Run another helper's stand-alone benchmark script and keep what it printed."""
    path = ROOT / "benchmarks" / f"{name}.py"
    if not path.exists():
        return {"error": f"{path.relative_to(ROOT)} does not exist yet"}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="taskengine-bench-") as tmp:
        figures = Path(tmp) / "figures.json"
        argv = [sys.executable, str(path)]
        if name in FIGURE_SCRIPTS:
            argv += ["--json-out", str(figures)]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=worker_env(),
            timeout=900,
            check=False,
        )
        print(proc.stdout, end="")
        result: dict[str, Any] = {
            "exit_code": proc.returncode,
            "seconds": time.perf_counter() - started,
            "output": proc.stdout,
            "stderr_tail": proc.stderr[-2000:],
        }
        if figures.exists():
            result["figures"] = json.loads(figures.read_text(encoding="utf-8"))
    return result


def _write(doc: dict[str, Any], args: argparse.Namespace, outputs: list[Path]) -> None:
    """Write the JSON copies and the chart; with --publish also into docs/benchmarks/."""
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    chart = report.draw_chart(doc, args.chart)
    goals = report.draw_targets_chart(doc, Path(args.chart).with_name("targets.png"))
    if args.publish:
        PUBLISHED.mkdir(parents=True, exist_ok=True)
        (PUBLISHED / "latest.json").write_text(text, encoding="utf-8")
        if chart is not None:
            shutil.copyfile(chart, PUBLISHED / "step_us.png")
        if goals is not None:
            shutil.copyfile(goals, PUBLISHED / "targets.png")
    elapsed = doc.get("config", {}).get("elapsed_s")
    print(
        f"wrote {', '.join(str(o) for o in outputs) or 'no JSON'}"
        + (f", chart {chart}" if chart else "")
        + (f", targets chart {goals}" if goals else "")
        + (f"; published to {PUBLISHED}" if args.publish else "")
        + (f" ({elapsed} s)" if elapsed is not None else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.from_json:
        doc = _load(args.from_json)
        report.print_report(doc)
        _write(doc, args, outputs=[Path(args.json)] if args.json else [])
        return 0
    # A terminated run still cleans up its temporary databases and subprocesses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    comparisons, scripts = _selection(args.only)
    variants = _variants(args.variants)
    if args.quick and not args.only:
        comparisons = ["step", "startup"]
    quick = args.quick
    config = {
        "quick": quick,
        "n": args.n or (1_000 if quick else step_overhead.DEFAULT_N),
        "reps": args.reps or (3 if quick else 5),
        "cap_s": args.cap if args.cap is not None else (10.0 if quick else 45.0),
        "budget_s": args.budget if args.budget is not None else (5.0 if quick else 40.0),
        "concurrency_runs": args.runs or (100 if quick else 500),
        "concurrency_reps": args.conc_reps or (1 if quick else 9),
        "startup_reps": 5 if quick else 11,
        "comparisons": comparisons + scripts,
    }
    started = time.perf_counter()
    step = conc = start = None
    extras: dict[str, Any] = {}
    if "step" in comparisons:
        print(f"step overhead: N = {config['n']:,}, {config['reps']} repetitions, interleaved")
        step = step_overhead.run(
            config["n"],
            config["reps"],
            variants=variants,
            budget_s=config["budget_s"],
            cap_s=config["cap_s"],
        )
    if "concurrency" in comparisons:
        print(
            f"concurrency: {config['concurrency_runs']} runs × 3 calls, {config['concurrency_reps']} repetitions"
        )
        conc = concurrency.run(config["concurrency_runs"], config["concurrency_reps"])
    if "startup" in comparisons:
        print(f"start-up: {config['startup_reps']} repetitions")
        start = startup.run(config["startup_reps"])
    for name in scripts:
        print(f"{name}: running benchmarks/{name}.py")
        extras[name] = _run_script(name)
    config["elapsed_s"] = round(time.perf_counter() - started, 1)
    doc = report.build_document(
        step=step, startup=start, concurrency=conc, config=config, extras=extras
    )
    report.print_report(doc)
    _write(doc, args, outputs=[RESULTS / "latest.json"] + ([Path(args.json)] if args.json else []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
