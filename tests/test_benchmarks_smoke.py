"""Smoke test of the benchmark harness: it runs and its JSON has the promised shape.

Nothing here is timed or compared: CI never judges speed. LangGraph and Burr are not needed;
their variants are only checked to be reported as skipped when the package is missing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `benchmarks/` lives next to `src/`, not inside the package
    sys.path.insert(0, str(ROOT))

from benchmarks import __main__ as bench_main  # noqa: E402
from benchmarks import concurrency, report, startup, step_overhead  # noqa: E402

N = 200


def test_step_overhead_runs_floor_and_taskengine_and_builds_the_document(tmp_path: Path) -> None:
    lines: list[str] = []
    result = step_overhead.run(
        N,
        2,
        variants=["floor", "taskengine_memory", "sqlite_floor", "taskengine_sqlite"],
        budget_s=None,
        log=lines.append,
    )
    assert result["n"] == N
    assert set(result["median_us"]) == set(step_overhead.SHAPES)
    for shape in step_overhead.SHAPES:
        for name in ("floor", "taskengine_memory", "sqlite_floor", "taskengine_sqlite"):
            samples = result["samples_us"][shape][name]
            assert len(samples) == 2
            assert all(isinstance(x, float) and x > 0 for x in samples)
        assert result["ratios"][shape]["taskengine_memory/floor"] > 0
        assert result["ratios"][shape]["taskengine_sqlite/sqlite_floor"] > 0

    doc = report.build_document(step=result, startup=None, concurrency=None, config={"n": N})
    doc = json.loads(json.dumps(doc))  # the document is plain JSON
    assert set(report.STEP_KEYS) <= set(doc["step_us"])
    assert set(report.IMPORT_KEYS) <= set(doc["import_ms"])
    assert doc["step_us"]["floor"] > 0 and doc["step_us"]["taskengine_memory"] > 0
    assert doc["step_us"]["burr"] is None and doc["import_ms"]["taskengine"] is None
    assert {"date", "cpu", "python", "packages"} <= set(doc["environment"])
    assert doc["environment"]["packages"]["taskengine"]
    met = {t["target"]: t["ok"] for t in doc["targets"]}
    assert met["import taskengine"] is None  # not measured here, so not judged


@pytest.mark.parametrize("shape", step_overhead.SHAPES)
def test_sqlite_floor_commits_one_row_per_step(tmp_path: Path, shape: str) -> None:
    import sqlite3

    floor = step_overhead.SqliteFloor(shape, N, tmp_path)
    floor.prepare()
    try:
        assert floor.run_once()[1] == N
        assert floor.run_once()[1] == N
    finally:
        floor.close()
    with sqlite3.connect(tmp_path / f"floor-{shape}.db") as conn:
        rows = conn.execute("SELECT run, COUNT(*), MAX(seq) FROM steps GROUP BY run").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows == [(1, N, N - 1), (2, N, N - 1)]
    assert mode == "wal"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "nope"], "unknown benchmark(s): nope; choose from step,"),
        (["--variants", "floor,bogus"], "unknown variant(s): bogus; choose from floor,"),
        (["--from-json", "/nonexistent/r.json"], "--from-json /nonexistent/r.json: cannot read"),
    ],
)
def test_bad_arguments_end_in_one_line_before_anything_runs(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        bench_main.main(argv)
    assert str(info.value.code).startswith(message)
    assert "\n" not in str(info.value.code)


def test_a_file_that_is_no_results_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text("[1, 2]")
    with pytest.raises(SystemExit, match="not a results document"):
        bench_main.main(["--from-json", str(path)])


def test_missing_packages_are_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step_overhead, "has_module", lambda name: name not in ("burr", "langgraph"))
    lines: list[str] = []
    result = step_overhead.run(
        N, 1, variants=["floor", "burr", "langgraph_sync"], shapes=("loop",), log=lines.append
    )
    assert "pip install 'taskengine[bench]'" in result["skipped"]["burr"]
    assert "langgraph" in result["skipped"]["langgraph_sync"]
    assert result["median_us"]["loop"]["burr"] is None
    assert result["median_us"]["loop"]["floor"] > 0
    assert any("skip burr" in line for line in lines)


def test_startup_runs_the_cli_in_fresh_processes_and_reports_its_targets() -> None:
    if startup.commands("one.yaml")["taskengine_run"][0] is None:
        pytest.skip("no `taskengine` console script next to this interpreter")
    lines: list[str] = []
    result = startup.run(1, log=lines.append)
    for name in ("python", "taskengine", "taskengine_help", "taskengine_run", "run_deps",
                 "run_deps_no_pydantic"):  # fmt: skip
        assert result["median_ms"][name] > 0, name
    assert any("taskengine's own share" in line for line in lines)
    labels = {label for label, _limit in startup.TARGETS_MS.values()}
    assert {row["target"] for row in result["targets"]} == labels
    assert all(isinstance(row["ok"], bool) for row in result["targets"])  # measured, not judged
    assert sum("met:" in line for line in lines) == len(labels)
    # the probe's run (for the dependency floors), the warm-up and the timed run, all three
    # in the default SQLite store
    assert result["store"]["runs"] == 3
    assert result["store"]["file"].endswith("taskengine.db")


def test_startup_times_a_process_to_its_exit_not_to_the_next_poll(tmp_path) -> None:
    """The child exits 120 ms after it was started; a polling wait (what `subprocess.run` with
    a timeout does) would only notice at 163.5 ms, 43 ms late. The figure must end at the exit."""
    stamp = tmp_path / "exited"
    child = (
        "import sys, time\n"
        "deadline = float(sys.argv[1]) + 0.120\n"
        "time.sleep(max(0.0, deadline - time.time()))\n"
        "open(sys.argv[2], 'w').write(repr(time.time()))\n"
    )
    late = []
    for _ in range(3):
        began = time.time()
        elapsed_ms = startup._time([sys.executable, "-c", child, repr(began), str(stamp)])
        late.append((began + elapsed_ms / 1000.0 - float(stamp.read_text())) * 1000.0)
    assert min(late) < 20.0, f"the timing noticed the exit {late} ms late"


def test_a_run_over_the_cap_is_interrupted_and_kept_as_a_lower_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Endless(step_overhead.Variant):
        def run_once(self) -> tuple[float, int]:
            deadline = time.monotonic() + 30  # the cap must cut this short
            while time.monotonic() < deadline:
                pass
            raise AssertionError("the cap did not interrupt the run")

    monkeypatch.setitem(step_overhead.VARIANTS, "endless", Endless)
    result = step_overhead.run(
        N,
        2,
        variants=["floor", "endless"],
        shapes=("loop",),
        cap_s=0.2,
        isolate=False,  # the test-only variant exists in this process only
        log=lambda _: None,
    )
    assert result["over_cap_us"]["loop"]["endless"] == pytest.approx(0.2 / N * 1e6)
    assert result["median_us"]["loop"]["endless"] is None
    assert result["samples_us"]["loop"]["endless"] == [None, None]  # not retried after the cap
    assert "cap" in result["notes"]["loop"]["endless"]


def test_an_isolated_worker_reports_a_run_over_the_cap() -> None:
    """The cap also cuts a run short inside a variant's worker process (isolate=True)."""
    n = 10**9  # the floor's loop would take minutes
    result = step_overhead.run(
        n, 1, variants=["floor"], shapes=("loop",), cap_s=0.3, log=lambda _: None
    )
    assert result["isolated"] is True
    assert result["samples_us"]["loop"]["floor"] == [None]
    assert result["over_cap_us"]["loop"]["floor"] == pytest.approx(0.3 / n * 1e6)


def test_chart_is_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = step_overhead.run(N, 1, variants=["floor", "taskengine_memory"], log=lambda _: None)
    doc = report.build_document(step=result, startup=None, concurrency=None, config={})
    path = report.draw_chart(doc, tmp_path / "step_us.png")
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("variant", ["baseline", "taskengine"])
async def test_concurrency_worker_against_the_fake_server(variant: str) -> None:
    from taskengine.testing.fake_llm import FakeLLMServer

    async with FakeLLMServer(default_reply=concurrency.REPLY) as srv:
        result = await concurrency._work(variant, srv.openai_base_url, 5)
        # five runs of three calls each, plus the warm-up run; each prompt carries the last answer
        chats = srv.requests_for("/v1/chat/completions")
        assert len(chats) == 18
        assert any(r.messages[-1]["content"] == f"Improve: {concurrency.REPLY}" for r in chats)
    assert result["runs"] == 5 and result["calls"] == 15
    assert result["wall_s"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0
    assert result["peak_rss_mb"] > 0


def _targets_by_name(doc: dict) -> dict[str, dict]:
    return {row["target"]: row for row in doc["targets"]}


def test_issue_21_targets_read_the_stand_alone_scripts_figures(tmp_path: Path) -> None:
    """Server, PostgreSQL and CLI targets come from the figures the scripts wrote in the run."""
    extras = {
        "server_load": {"figures": {"vs_floor": {"/tasks": {"rps": 1.2, "p99": 1.7},
                                                 "/openai": {"rps": 1.4, "p99": 1.1}}}},
        "pg_concurrency": {"figures": {"ratios": {"postgres/memory": 1.05,
                                                  "postgres/langgraph_pg": 0.4}}},
    }  # fmt: skip
    startup_result = {"median_ms": {"taskengine_run": 130.0, "taskengine_help": 120.0}}
    doc = report.build_document(
        step=None, startup=startup_result, concurrency=None, config={}, extras=extras
    )
    rows = _targets_by_name(doc)
    assert rows["/tasks: floor req/s / /tasks req/s"]["ok"] is True
    assert rows["/tasks: p99 / floor p99"]["ok"] is False  # 1.7 > 1.5
    assert rows["/openai: p99 / floor p99"]["value"] == 1.1
    assert rows["PostgreSQL wall / in-memory (500 × 3 steps)"]["ok"] is True
    assert rows["PostgreSQL wall / LangGraph + Postgres"]["ok"] is True
    assert rows["taskengine run (one task, SQLite)"]["ok"] is False  # 130 > 120
    assert rows["taskengine --help"]["ok"] is True
    assert rows["in-memory µs/step"]["ok"] is None  # the step benchmark did not run


def test_targets_chart_is_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    startup_result = {"median_ms": {"taskengine_run": 130.0, "taskengine_help": 120.0}}
    doc = report.build_document(step=None, startup=startup_result, concurrency=None, config={})
    path = report.draw_targets_chart(doc, tmp_path / "targets.png")
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")


def test_pg_concurrency_writes_its_figures_for_the_harness(tmp_path: Path) -> None:
    """`--json-out` is how `python -m benchmarks --only pg_concurrency` keeps the figures."""
    import subprocess

    from benchmarks import worker_env

    out = tmp_path / "figures.json"
    script = ROOT / "benchmarks" / "pg_concurrency.py"
    argv = [sys.executable, str(script), "--runs", "4", "--reps", "1", "--only", "memory,sqlite",
            "--json-out", str(out)]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["runs"] == 4
    assert figures["ratios"]["sqlite/memory"] > 0
    assert figures["ratios"]["postgres/memory"] is None  # not asked for, so not judged
