"""Step overhead: µs per step of a chain of N noop tasks and of a self-loop that runs N steps.

Every engine runs the same two shapes, built before the clock starts:

* ``chain``: N distinct tasks in sequence, each passing its input on (a default transition to
  the next task, the last one ends the run).
* ``loop``: one task that follows itself until a counter in the run state reaches N (a
  conditional edge / transition). This is the headline figure (``step_us`` in the JSON).

The taskengine self-loop uses a custom handler (``count``, registered on ``SimpleExec``) that
returns ``n + 1`` as its output and ``"done"``/``"more"`` as its transition value; the chain's
transitions send ``done`` to ``end`` and everything else back to the task. That is the same work
LangGraph's conditional edge and Burr's conditional transition do: a counter in state, one
comparison per step. ``max_steps`` is set above N so the guard never fires.

Two floors frame the engines: ``floor`` (a hand-written loop, what any engine costs at least in
memory) and ``sqlite_floor`` (the same loop committing one row per step to SQLite with the
store's pragmas, what any engine with a durable checkpoint per step costs at least on this
machine's disk, which makes a slow-disk run recognisable as such).

Each (shape, variant) runs in its own worker process; the variants are interleaved within each
repetition (the order rotates each repetition); a variant whose timed runs add up to more than
the budget is not repeated (its median then rests on fewer samples, which the output says).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from benchmarks import ROOT, has_module, median, no_tracing_env, worker_env

__all__ = ["DEFAULT_N", "RATIOS", "SHAPES", "VARIANTS", "run"]

DEFAULT_N = 10_000
SHAPES = ("loop", "chain")

#: ratios reported, as (slower, faster): "how many times slower than" pairs.
RATIOS = (
    ("taskengine_memory", "floor"),
    ("taskengine_sqlite", "sqlite_floor"),
    ("burr", "taskengine_memory"),
    ("langgraph_sync", "taskengine_memory"),
    ("langgraph_async", "taskengine_memory"),
    ("langgraph_sqlite", "taskengine_sqlite"),
    ("taskengine_sqlite", "taskengine_memory"),
)


class Variant:
    """One engine set up for one shape; `run_once` times exactly one run."""

    requires: tuple[str, ...] = ()

    def __init__(self, shape: str, n: int, workdir: Path) -> None:
        self.shape = shape
        self.n = n
        self.workdir = workdir

    def prepare(self) -> None:
        """Build graphs, chains and stores (not timed)."""

    def run_once(self) -> tuple[float, int]:
        """Run once; return (seconds spent in the run, steps executed)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release stores and event loops."""


# --- the floor: a hand-written loop over a dict state with a transition table ----------------


class Floor(Variant):
    """What any engine has to cost at least: call a handler, store its output, look up the next task."""

    def prepare(self) -> None:
        n = self.n
        if self.shape == "chain":
            ids = [f"t{i}" for i in range(n)]
            self.table: dict[str, dict[str, str | None]] = {
                tid: {"": ids[i + 1] if i + 1 < n else None} for i, tid in enumerate(ids)
            }
            self.first = ids[0]
            self.handler: Callable[[Any], tuple[Any, str]] = lambda value: (value, "")
            self.start: Any = "x"
        else:
            self.table = {"tick": {"done": None, "": "tick"}}
            self.first = "tick"
            self.handler = lambda value: (value + 1, "done" if value + 1 >= n else "more")
            self.start = 0

    def run_once(self) -> tuple[float, int]:
        table, handler = self.table, self.handler
        started = time.perf_counter()
        state: dict[str, Any] = {"input": self.start, "previous_output": self.start}
        current: str | None = self.first
        steps = 0
        while current is not None:
            out, value = handler(state["previous_output"])
            state[current] = out
            state["previous_output"] = out
            branches = table[current]
            current = branches[value] if value in branches else branches[""]
            steps += 1
        return time.perf_counter() - started, steps


class SqliteFloor(Floor):
    """The floor plus a durable checkpoint: one autocommit INSERT of the step (JSON) per step.

    Same file settings as taskengine's store (`CONNECTION_PRAGMAS`: WAL, synchronous=NORMAL),
    one small row per step in a table keyed by (run, seq). No engine can checkpoint every step
    for less on this disk, so `taskengine_sqlite / sqlite_floor` is the engine's own share and
    this figure is how fast the machine commits today.
    """

    def prepare(self) -> None:
        super().prepare()
        from taskengine.store.sqlite import CONNECTION_PRAGMAS

        self.conn = sqlite3.connect(
            str(self.workdir / f"floor-{self.shape}.db"), isolation_level=None
        )
        for pragma in CONNECTION_PRAGMAS:
            self.conn.execute(pragma)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS steps (run INTEGER, seq INTEGER, step TEXT, "
            "PRIMARY KEY (run, seq)) WITHOUT ROWID"
        )
        self.run_no = self.seq = 0
        # The floor's own loop, its handler wrapped to commit each step (one call more per step)
        step, execute, dumps = self.handler, self.conn.execute, json.dumps
        insert = "INSERT INTO steps (run, seq, step) VALUES (?, ?, ?)"

        def handler(value: Any) -> tuple[Any, str]:
            out, transition = step(value)
            execute(
                insert, (self.run_no, self.seq, dumps({"output": out, "transition": transition}))
            )
            self.seq += 1
            return out, transition

        self.handler = handler

    def run_once(self) -> tuple[float, int]:
        self.run_no += 1
        self.seq = 0
        return super().run_once()

    def close(self) -> None:
        self.conn.close()


# --- taskengine -----------------------------------------------------------------------------


def taskengine_chain(shape: str, n: int) -> Any:
    """The benchmark chain as a validated `TaskChainDefinition` (linted with the `count` handler)."""
    from taskengine.chain import TaskChainDefinition
    from taskengine.chain.lint import lint_chain

    if shape == "chain":
        tasks = [
            {
                "id": f"t{i}",
                "handler": "noop",
                "transition": {
                    "branches": [
                        {"operator": "default", "goto": f"t{i + 1}" if i + 1 < n else "end"}
                    ]
                },
            }
            for i in range(n)
        ]
    else:
        tasks = [
            {
                "id": "tick",
                "handler": "count",
                "transition": {
                    "branches": [
                        {"operator": "equals", "when": "done", "goto": "end"},
                        {"operator": "default", "goto": "tick"},
                    ]
                },
            }
        ]
    chain = TaskChainDefinition.model_validate(
        {"id": f"bench-{shape}", "max_steps": n + 10, "tasks": tasks}
    )
    errors = [p for p in lint_chain(chain, extra_handlers=["count"]) if p.severity == "error"]
    if errors:
        raise RuntimeError(f"benchmark chain does not lint: {errors}")
    return chain


class TaskengineMemory(Variant):
    """`SimpleEnv` without a store: the engine's in-memory loop."""

    store_url: str | None = None

    def prepare(self) -> None:
        from taskengine.datatypes import DataType
        from taskengine.engine import SimpleEnv
        from taskengine.executor import SimpleExec

        n = self.n

        async def count(ctx: Any, task: Any, value: int, value_type: Any) -> tuple[int, Any, str]:
            nxt = value + 1
            return nxt, DataType.INT, "done" if nxt >= n else "more"

        self.chain = taskengine_chain(self.shape, n)
        self.input = ("x", DataType.STRING) if self.shape == "chain" else (0, DataType.INT)
        self.runner = asyncio.Runner()
        self.store = None
        if self.store_url is not None:
            from taskengine.store import open_store

            self.store = self.runner.run(open_store(self.store_url))
        self.env = SimpleEnv(SimpleExec(handlers={"count": count}), store=self.store)

    async def _timed(self) -> tuple[float, int]:
        value, value_type = self.input
        started = time.perf_counter()
        result = await self.env.exec_env(self.chain, value, value_type)
        return time.perf_counter() - started, len(result.state)

    def run_once(self) -> tuple[float, int]:
        return self.runner.run(self._timed())

    def close(self) -> None:
        if self.store is not None:
            self.runner.run(self.store.aclose())
        self.runner.close()


class TaskengineSqlite(TaskengineMemory):
    """`SimpleEnv` with the SQLite run store: a durable checkpoint after every step."""

    def prepare(self) -> None:
        self.store_url = f"sqlite:///{self.workdir / f'taskengine-{self.shape}.db'}"
        super().prepare()


# --- LangGraph ------------------------------------------------------------------------------


class Count(TypedDict):
    """The LangGraph run state: one counter (module level so LangGraph can resolve the hints)."""

    n: int


def langgraph_graph(shape: str, n: int, checkpointer: Any = None) -> Any:
    """A compiled StateGraph: a sequence of n nodes, or one node with a conditional self-edge."""
    no_tracing_env()
    from langgraph.graph import END, START, StateGraph

    def step(state: Count) -> dict[str, int]:
        return {"n": state["n"] + 1}

    graph = StateGraph(Count)
    if shape == "chain":
        previous = START
        for i in range(n):
            graph.add_node(f"t{i}", step)
            graph.add_edge(previous, f"t{i}")
            previous = f"t{i}"
        graph.add_edge(previous, END)
    else:

        def again(state: Count) -> str:
            return "step" if state["n"] < n else END

        graph.add_node("step", step)
        graph.add_edge(START, "step")
        graph.add_conditional_edges("step", again, ["step", END])
    return graph.compile(checkpointer=checkpointer)


class LangGraphSync(Variant):
    """`graph.invoke` without a checkpointer (recursion limit raised above N)."""

    requires = ("langgraph",)

    def prepare(self) -> None:
        self.graph = langgraph_graph(self.shape, self.n, self._checkpointer())

    def _checkpointer(self) -> Any:
        return None

    def _config(self) -> dict[str, Any]:
        return {"recursion_limit": self.n + 10}

    def run_once(self) -> tuple[float, int]:
        config = self._config()
        started = time.perf_counter()
        out = self.graph.invoke({"n": 0}, config)
        return time.perf_counter() - started, out["n"]


class LangGraphAsync(LangGraphSync):
    """`await graph.ainvoke` without a checkpointer."""

    def prepare(self) -> None:
        super().prepare()
        self.runner = asyncio.Runner()

    async def _timed(self) -> tuple[float, int]:
        config = self._config()
        started = time.perf_counter()
        out = await self.graph.ainvoke({"n": 0}, config)
        return time.perf_counter() - started, out["n"]

    def run_once(self) -> tuple[float, int]:
        return self.runner.run(self._timed())

    def close(self) -> None:
        self.runner.close()


class LangGraphSqlite(LangGraphSync):
    """`graph.invoke` with `SqliteSaver` on a file, a new thread per run (default durability).

    The connection gets the pragmas taskengine's SQLite store uses (WAL, synchronous=NORMAL,
    the same WAL checkpoint interval), so neither side pays for an fsync the other skips.
    """

    requires = ("langgraph", "langgraph.checkpoint.sqlite")

    def _checkpointer(self) -> Any:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.conn = sqlite3.connect(
            str(self.workdir / f"langgraph-{self.shape}.db"), check_same_thread=False
        )
        from taskengine.store.sqlite import CONNECTION_PRAGMAS

        for pragma in CONNECTION_PRAGMAS:
            self.conn.execute(pragma)
        saver = SqliteSaver(self.conn)
        saver.setup()
        return saver

    def _config(self) -> dict[str, Any]:
        return {"recursion_limit": self.n + 10, "configurable": {"thread_id": uuid.uuid4().hex}}

    def close(self) -> None:
        self.conn.close()


# --- Burr -----------------------------------------------------------------------------------


class Burr(Variant):
    """`ApplicationBuilder`: one action looping on a condition (or a sequence of N actions)."""

    requires = ("burr",)

    def prepare(self) -> None:
        from burr.core import State, action, default
        from burr.core.action import Condition

        n = self.n

        @action(reads=["n"], writes=["n"])
        def step(state: State) -> State:
            return state.update(n=state["n"] + 1)

        @action(reads=[], writes=[])
        def done(state: State) -> State:
            return state

        if self.shape == "chain":
            self.actions = {f"t{i}": step for i in range(n)}
            self.actions["done"] = done
            self.transitions = [(f"t{i}", f"t{i + 1}") for i in range(n - 1)]
            self.transitions.append((f"t{n - 1}", "done"))
            self.entry = "t0"
        else:
            self.actions = {"step": step, "done": done}
            more = Condition.lmda(lambda state: state["n"] < n, ["n"])
            self.transitions = [("step", "step", more), ("step", "done", default)]
            self.entry = "step"

    def run_once(self) -> tuple[float, int]:
        from burr.core import ApplicationBuilder

        # An application holds its state and position, so each run gets a fresh one (built untimed).
        app = (
            ApplicationBuilder()
            .with_actions(**self.actions)
            .with_transitions(*self.transitions)
            .with_state(n=0)
            .with_entrypoint(self.entry)
            .build()
        )
        started = time.perf_counter()
        _action, _result, state = app.run(halt_after=["done"])
        return time.perf_counter() - started, state["n"]


VARIANTS: dict[str, type[Variant]] = {
    "floor": Floor,
    "taskengine_memory": TaskengineMemory,
    "sqlite_floor": SqliteFloor,
    "taskengine_sqlite": TaskengineSqlite,
    "langgraph_sync": LangGraphSync,
    "langgraph_async": LangGraphAsync,
    "langgraph_sqlite": LangGraphSqlite,
    "burr": Burr,
}


class _OverCap(BaseException):
    """Raised by the alarm inside a run that exceeds the cap (a BaseException, so engines' own
    `except Exception` handlers cannot swallow it)."""


def _capped(variant: Variant, cap_s: float | None) -> tuple[float, int]:
    """`variant.run_once()`, interrupted with `_OverCap` after `cap_s` seconds (where signals allow)."""
    if cap_s is None or not hasattr(signal, "setitimer"):
        return variant.run_once()
    if threading.current_thread() is not threading.main_thread():
        return variant.run_once()

    def on_alarm(signum: int, frame: Any) -> None:
        raise _OverCap

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, cap_s)
    try:
        return variant.run_once()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _sync() -> None:
    """Write back every dirty page (where the platform can), so no variant pays for another's."""
    if hasattr(os, "sync"):
        os.sync()


class _Isolated(Variant):
    """A variant living in its own Python process, driven over a pipe (`run` / `close`).

    In one shared process the SQLite variant ran 30-60% slower right after LangGraph's runs
    than before them, while a fresh process started right after LangGraph was not slower:
    whatever one engine leaves behind in a process must not be charged to the next. Each
    (shape, variant) gets its own worker; they stay idle (blocked on the pipe) while others run.
    """

    def __init__(self, name: str, shape: str, n: int, workdir: Path, cap_s: float | None) -> None:
        super().__init__(shape, n, workdir)
        self.name = name
        self.cap_s = cap_s
        self.proc: subprocess.Popen[str] | None = None

    def prepare(self) -> None:
        cap = "" if self.cap_s is None else str(self.cap_s)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.step_overhead",
                "--worker",
                self.name,
                self.shape,
                str(self.n),
                str(self.workdir),
                cap,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=worker_env(),
        )
        self._reply()  # "ready" once the worker has built its variant

    def _reply(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.shape}/{self.name} worker exited ({self.proc.wait()})")
        return json.loads(line)

    def run_once(self) -> tuple[float, int]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if reply.get("over_cap"):
            raise _OverCap
        return reply["seconds"], reply["steps"]

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write("close\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


def _worker(argv: list[str]) -> None:
    """`--worker NAME SHAPE N WORKDIR CAP`: build one variant, then time a run per `run` line."""
    name, shape, n, workdir, cap = argv
    no_tracing_env()
    variant = VARIANTS[name](shape, int(n), Path(workdir))
    variant.prepare()
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() != "run":
                break
            gc.collect()
            try:
                seconds, steps = _capped(variant, float(cap) if cap else None)
            except _OverCap:
                print(json.dumps({"over_cap": True}), flush=True)
                continue
            print(json.dumps({"seconds": seconds, "steps": steps}), flush=True)
    finally:
        variant.close()


def _ratio(
    slow: list[float | None],
    fast: list[float | None],
    slow_cap: tuple[int, float] | None,
    fast_cap: tuple[int, float] | None,
) -> tuple[float | None, str | None]:
    """Median of per-repetition ratios where both ran; else a bound from a run that hit the cap."""
    both = [s / f for s, f in zip(slow, fast, strict=False) if s and f]
    if both:
        return median(both), None
    if slow_cap is not None and slow_cap[0] < len(fast) and fast[slow_cap[0]]:
        return slow_cap[1] / fast[slow_cap[0]], "at_least"  # type: ignore[operator]
    if fast_cap is not None and fast_cap[0] < len(slow) and slow[fast_cap[0]]:
        return slow[fast_cap[0]] / fast_cap[1], "at_most"  # type: ignore[operator]
    return None, None


def run(
    n: int = DEFAULT_N,
    reps: int = 5,
    *,
    variants: list[str] | None = None,
    shapes: tuple[str, ...] = SHAPES,
    budget_s: float | None = 40.0,
    cap_s: float | None = 45.0,
    isolate: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the comparison; returns samples, medians (µs/step), paired ratios and skip reasons.

    A variant stops repeating once its timed runs add up to `budget_s`; a single run longer
    than `cap_s` is interrupted and recorded as a lower bound (`over_cap_us`).
    """
    names = list(variants or VARIANTS)
    skipped: dict[str, str] = {}
    for name in names:
        missing = [m for m in VARIANTS[name].requires if not has_module(m)]
        if missing:
            skipped[name] = f"not installed: {', '.join(missing)} (pip install 'taskengine[bench]')"
            log(f"  skip {name}: {skipped[name]}")
    active = [name for name in names if name not in skipped]
    workdir = Path(tempfile.mkdtemp(prefix="taskengine-bench-"))
    built: dict[tuple[str, str], Variant] = {}
    samples: dict[str, dict[str, list[float | None]]] = {s: {v: [] for v in names} for s in shapes}
    notes: dict[str, dict[str, str]] = {s: {} for s in shapes}
    over_cap: dict[str, dict[str, tuple[int, float]]] = {s: {} for s in shapes}
    try:
        for shape in shapes:
            for name in active:
                # each variant's files in a directory of their own, removed once it is dropped
                home = workdir / f"{shape}-{name}"
                home.mkdir()
                variant = (
                    _Isolated(name, shape, n, home, cap_s)
                    if isolate
                    else VARIANTS[name](shape, n, home)
                )
                started = time.perf_counter()
                variant.prepare()
                built[shape, name] = variant
                log(f"  built {shape}/{name} in {time.perf_counter() - started:.2f} s")
        spent = dict.fromkeys(built, 0.0)
        dropped: set[tuple[str, str]] = set()
        for rep in range(reps):
            order = active[rep % len(active) :] + active[: rep % len(active)] if active else []
            for shape in shapes:
                for name in order:
                    key = (shape, name)
                    if key in dropped:
                        samples[shape][name].append(None)
                        continue
                    # write back what earlier variants left dirty: LangGraph + SqliteSaver
                    # writes ~100 MB a run, and its write-back throttled whichever SQLite
                    # variant came next (taskengine's samples ranged 32-62 µs/step)
                    _sync()
                    if not isolate:  # an isolated worker collects in its own process
                        gc.collect()
                    try:
                        seconds, steps = _capped(built[key], cap_s)
                    except _OverCap:
                        samples[shape][name].append(None)
                        over_cap[shape][name] = (rep, cap_s / n * 1e6)  # type: ignore[operator]
                        dropped.add(key)
                        # A capped LangGraph + SqliteSaver chain run leaves gigabytes behind;
                        # every later SQLite sample was slower (2-4x) while they stayed on disk.
                        # Removing them makes the filesystem discard that much (ext4 with
                        # `discard` here), so give it a few untimed seconds to settle.
                        built.pop(key).close()
                        shutil.rmtree(workdir / f"{shape}-{name}", ignore_errors=True)
                        _sync()
                        time.sleep(5.0)
                        notes[shape][name] = (
                            f"a run took over the {cap_s:.0f} s cap: > {cap_s / n * 1e6:,.0f} µs/step"  # type: ignore[operator]
                        )
                        log(f"  {shape}/{name}: {notes[shape][name]}")
                        continue
                    if steps != n:
                        raise RuntimeError(f"{shape}/{name} ran {steps} steps, expected {n}")
                    samples[shape][name].append(seconds / n * 1e6)
                    spent[key] += seconds
                    if budget_s is not None and spent[key] >= budget_s and rep < reps - 1:
                        dropped.add(key)
                        notes[shape][name] = (
                            f"{rep + 1} of {reps} repetitions (over the {budget_s:.0f} s budget)"
                        )
            line = ", ".join(
                f"{shape[0]}:{name}={samples[shape][name][-1]:.1f}"
                for shape in shapes
                for name in active
                if samples[shape][name] and samples[shape][name][-1] is not None
            )
            log(f"  repetition {rep + 1}/{reps} µs/step: {line}")
    finally:
        for key, variant in built.items():
            try:
                variant.close()
            except Exception as exc:  # an interrupted variant may not close cleanly
                log(f"  could not close {key[0]}/{key[1]}: {type(exc).__name__}: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
    # A run cut off at the cap counts at the cap (a lower bound) next to measured runs, so
    # the median is not flattered by dropping it; alone it stays None (see `over_cap_us`).
    medians = {
        shape: {
            name: median(
                [x for x in samples[shape][name] if x is not None]
                + ([over_cap[shape][name][1]] if name in over_cap[shape] else [])
            )
            if any(x is not None for x in samples[shape][name])
            else None
            for name in names
        }
        for shape in shapes
    }
    ratios: dict[str, dict[str, float | None]] = {s: {} for s in shapes}
    bounds: dict[str, dict[str, str]] = {s: {} for s in shapes}
    for shape in shapes:
        caps = over_cap[shape]
        for slow, fast in RATIOS:
            if slow in names and fast in names:
                key = f"{slow}/{fast}"
                value, bound = _ratio(
                    samples[shape][slow], samples[shape][fast], caps.get(slow), caps.get(fast)
                )
                ratios[shape][key] = value
                if bound:
                    bounds[shape][key] = bound
    return {
        "n": n,
        "reps": reps,
        "budget_s": budget_s,
        "cap_s": cap_s,
        "isolated": isolate,
        "headline_shape": "loop" if "loop" in shapes else shapes[0],
        "samples_us": samples,
        "median_us": medians,
        "over_cap_us": {s: {k: v[1] for k, v in over_cap[s].items()} for s in shapes},
        "ratios": ratios,
        "ratio_bounds": bounds,
        "notes": notes,
        "skipped": skipped,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(sys.argv[2:])
