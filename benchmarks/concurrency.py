"""LLM-bound concurrency: R concurrent runs of a 3-call chain against FakeLLMServer (50 ms answers).

Each run asks three times, and each answer feeds the next prompt (``Question {i}`` →
``Improve: {a}`` → ``Summarise: {b}``). Variants, each in a fresh subprocess so their peak RSS
is comparable (the server runs in its own process, so its memory is not counted):

* ``baseline``: bare asyncio, no engine: the ``openai`` SDK client on its aiohttp-backed
  transport, calling ``client.post(..., cast_to=Response)`` and parsing the JSON, exactly the
  wire path taskengine's ``OpenAICompatProvider`` uses.
* ``provider``: the same calls through taskengine's ``OpenAICompatProvider`` (no engine), to
  separate provider cost from engine cost.
* ``taskengine``: ``SimpleEnv.exec_env`` on a 3-task ``raw_string`` chain, provider resolved by
  ``ModelResolver`` from a ``ProviderRegistry`` holding one ``openai_compatible`` provider.
* ``langgraph``: a compiled 3-node async StateGraph whose nodes make the baseline's call.

One untimed warm-up run per variant loads lazily imported modules first. Peak RSS is the
worker's high-water mark (``VmHWM``, imports included; not ``ru_maxrss``, which on Linux keeps
the forking parent's peak across exec); ``rss_ready_mb`` is the RSS just before the timed part.

    python -m benchmarks.concurrency [--runs 500] [--reps 9] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from benchmarks import ROOT, has_module, median, no_tracing_env, percentile, worker_env

__all__ = ["VARIANTS", "run"]

MODEL = "fake-model"
REPLY = "hello there"
VARIANTS = ("baseline", "provider", "taskengine", "langgraph")
_REQUIRES = {"langgraph": ("langgraph",)}
_MARK = "BENCH_RESULT "


# --- the worker (runs inside a fresh subprocess) ------------------------------------------


def _httpx() -> Any:
    """The httpx flavour the installed openai SDK is built on (``httpx2`` in newer releases)."""
    try:
        import httpx2

        return httpx2
    except ImportError:
        import httpx

        return httpx


def _sdk_client(base_url: str) -> Any:
    import openai

    httpx = _httpx()
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    return openai.AsyncOpenAI(
        api_key="EMPTY",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(limits=limits, timeout=120),
    )


def _raw_caller(client: Any) -> Callable[[str], Awaitable[str]]:
    """One chat call on the SDK's raw path; returns the reply text."""
    response_type = _httpx().Response

    async def call(prompt: str) -> str:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
        response = await client.post("/chat/completions", body=body, cast_to=response_type)
        return json.loads(response.text)["choices"][0]["message"]["content"]

    return call


class _Three(TypedDict, total=False):
    question: str
    a: str
    b: str
    c: str


async def _setup(
    variant: str, base_url: str
) -> tuple[Callable[[int], Awaitable[str]], Callable[[], Awaitable[None]]]:
    """(one_run(i) -> final answer, close) for a variant."""
    if variant in ("baseline", "langgraph"):
        client = _sdk_client(base_url)
        call = _raw_caller(client)
        if variant == "baseline":

            async def one_run(i: int) -> str:
                a = await call(f"Question {i}")
                b = await call(f"Improve: {a}")
                return await call(f"Summarise: {b}")

        else:
            no_tracing_env()
            from langgraph.graph import END, START, StateGraph

            async def ask_a(state: _Three) -> dict[str, str]:
                return {"a": await call(f"Question {state['question']}")}

            async def ask_b(state: _Three) -> dict[str, str]:
                return {"b": await call(f"Improve: {state['a']}")}

            async def ask_c(state: _Three) -> dict[str, str]:
                return {"c": await call(f"Summarise: {state['b']}")}

            graph = StateGraph(_Three)
            graph.add_node("ask_a", ask_a)
            graph.add_node("ask_b", ask_b)
            graph.add_node("ask_c", ask_c)
            graph.add_edge(START, "ask_a")
            graph.add_edge("ask_a", "ask_b")
            graph.add_edge("ask_b", "ask_c")
            graph.add_edge("ask_c", END)
            app = graph.compile()

            async def one_run(i: int) -> str:
                return (await app.ainvoke({"question": str(i)}))["c"]

        return one_run, client.close

    if variant == "provider":
        from taskengine.providers.openai_compat import OpenAICompatProvider

        provider = OpenAICompatProvider("fake", base_url=base_url, models=[MODEL])

        async def ask(prompt: str) -> str:
            return (await provider.prompt(prompt, model=MODEL)).message.content

        async def one_run(i: int) -> str:
            a = await ask(f"Question {i}")
            b = await ask(f"Improve: {a}")
            return await ask(f"Summarise: {b}")

        return one_run, provider.aclose

    if variant == "taskengine":
        from taskengine.chain import load_chain
        from taskengine.engine import SimpleEnv
        from taskengine.providers.config import ProviderConfig
        from taskengine.providers.registry import ProviderRegistry
        from taskengine.providers.resolver import ModelResolver

        config = ProviderConfig(
            name="fake", type="openai_compatible", base_url=base_url, models=[MODEL]
        )
        registry = ProviderRegistry.from_settings([config], environ={}, default_provider="fake")
        env = SimpleEnv(resolver=ModelResolver(registry))
        llm = {"provider": "fake", "model": MODEL}
        chain = load_chain(
            {
                "id": "three-calls",
                "tasks": [
                    {
                        "id": "t1",
                        "handler": "raw_string",
                        "prompt_template": "Question {{ .input }}",
                        "execute_config": llm,
                        "transition": {"branches": [{"operator": "default", "goto": "t2"}]},
                    },
                    {
                        "id": "t2",
                        "handler": "raw_string",
                        "prompt_template": "Improve: {{ .t1 }}",
                        "execute_config": llm,
                        "transition": {"branches": [{"operator": "default", "goto": "t3"}]},
                    },
                    {
                        "id": "t3",
                        "handler": "raw_string",
                        "prompt_template": "Summarise: {{ .t2 }}",
                        "execute_config": llm,
                    },
                ],
            }
        )

        async def one_run(i: int) -> str:
            return (await env.exec_env(chain, str(i))).output

        return one_run, registry.aclose

    raise ValueError(f"unknown variant {variant!r}")


def _peak_rss_mb() -> float:
    """This process's peak RSS: `VmHWM` (reset by exec), else `ru_maxrss` (may include the parent)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _rss_bytes() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


async def _work(variant: str, base_url: str, runs: int) -> dict[str, Any]:
    one_run, close = await _setup(variant, base_url)
    try:
        if await one_run(-1) != REPLY:  # warm-up: lazy imports, first connection
            raise RuntimeError(f"{variant}: unexpected reply in the warm-up run")
        rss_ready = _rss_bytes()
        latencies: list[float] = []

        async def timed(i: int) -> str:
            started = time.perf_counter()
            out = await one_run(i)
            latencies.append(time.perf_counter() - started)
            return out

        cpu_started = time.process_time()
        started = time.perf_counter()
        outputs = await asyncio.gather(*(timed(i) for i in range(runs)))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await close()
    bad = sum(1 for out in outputs if out != REPLY)
    if bad:
        raise RuntimeError(f"{variant}: {bad} of {runs} runs returned an unexpected answer")

    return {
        "variant": variant,
        "runs": runs,
        "calls": runs * 3,
        "wall_s": wall,
        "runs_per_s": runs / wall,
        "cpu_s": cpu,
        "cpu_ms_per_call": cpu / (runs * 3) * 1000.0,
        "p50_ms": percentile(latencies, 50) * 1000.0,  # type: ignore[operator]
        "p99_ms": percentile(latencies, 99) * 1000.0,  # type: ignore[operator]
        "peak_rss_mb": _peak_rss_mb(),
        "rss_ready_mb": rss_ready / 2**20 if rss_ready else None,
    }


def worker_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True, choices=VARIANTS)
    parser.add_argument("--url", required=True, help="the server's OpenAI base URL (…/v1)")
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args(argv)
    result = asyncio.run(_work(args.worker, args.url, args.runs))
    print(_MARK + json.dumps(result), flush=True)


# --- the parent: server process, one subprocess per variant and repetition ----------------


def _cpus() -> tuple[int, int] | None:
    """The CPUs the worker and the server are pinned to, or None on a one-CPU machine.

    Unpinned, the scheduler sometimes puts the worker and the server on one core, where they
    share its time: on this 2-core machine that made any variant's wall time jump by ~30% at
    random (bimodal samples). Pinning each to its own core takes that out for every variant.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else None


def _pinned(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class _ServerProcess:
    """FakeLLMServer in its own process (`python -m taskengine.testing.fake_llm`)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> _ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "taskengine.testing.fake_llm",
            "--reply",
            REPLY,
            "--delay",
            str(self.delay),
            "--model",
            MODEL,
        ]
        cpus = _cpus()
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            preexec_fn=_pinned(cpus[1] if cpus else None),
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not self.url:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError("FakeLLMServer process did not report its URL within 30 s")
                if sel.select(left):
                    line = self.proc.stdout.readline()
                    if line.startswith("FAKE_LLM_URL="):
                        self.url = line.split("=", 1)[1].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


def _run_worker(variant: str, url: str, runs: int, timeout: float) -> dict[str, Any]:
    env = worker_env()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.concurrency",
            "--worker",
            variant,
            "--url",
            url,
            "--runs",
            str(runs),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
        preexec_fn=_pinned(cpus[0] if (cpus := _cpus()) else None),
    )
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"{variant} worker failed (exit {proc.returncode}): " + " | ".join(tail))


def run(
    runs: int = 500,
    reps: int = 9,
    *,
    delay: float = 0.05,
    variants: list[str] | None = None,
    timeout: float = 300.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every variant `reps` times (interleaved); medians and ratios paired per repetition."""
    names = list(variants or VARIANTS)
    skipped: dict[str, str] = {}
    for name in names:
        missing = [m for m in _REQUIRES.get(name, ()) if not has_module(m)]
        if missing:
            skipped[name] = f"not installed: {', '.join(missing)} (pip install 'taskengine[bench]')"
            log(f"  skip {name}: {skipped[name]}")
    active = [n for n in names if n not in skipped]
    samples: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with _ServerProcess(delay) as server:
        for rep in range(reps):
            order = active[rep % len(active) :] + active[: rep % len(active)] if active else []
            for name in order:
                result = _run_worker(name, server.url + "/v1", runs, timeout)
                samples[name].append(result)
                log(
                    f"  repetition {rep + 1}/{reps} {name}: {result['wall_s']:.3f} s, "
                    f"p99 {result['p99_ms']:.0f} ms, peak RSS {result['peak_rss_mb']:.0f} MB"
                )
    metrics = (
        "wall_s",
        "runs_per_s",
        "cpu_s",
        "cpu_ms_per_call",
        "p50_ms",
        "p99_ms",
        "peak_rss_mb",
        "rss_ready_mb",
    )
    medians = {
        name: {m: median([s[m] for s in samples[name] if s.get(m) is not None]) for m in metrics}
        for name in names
    }
    ratios: dict[str, dict[str, float | None]] = {}
    for name in names:
        if name == "baseline" or not samples[name] or not samples.get("baseline"):
            continue
        pairs = list(zip(samples[name], samples["baseline"], strict=False))
        ratios[f"{name}/baseline"] = {
            "wall": median([a["wall_s"] / b["wall_s"] for a, b in pairs]),
            "peak_rss": median([a["peak_rss_mb"] / b["peak_rss_mb"] for a, b in pairs]),
            "cpu": median([a["cpu_s"] / b["cpu_s"] for a, b in pairs]),
        }
    return {
        "runs": runs,
        "calls_per_run": 3,
        "delay_ms": delay * 1000.0,
        "reps": reps,
        "ideal_wall_s": 3 * delay,
        "pinned_cpus": dict(zip(("worker", "server"), _cpus() or (), strict=False)),
        "transport": "openai SDK (AsyncOpenAI, max_retries=0) on DefaultAioHttpClient, raw post path; "
        "taskengine's OpenAICompatProvider default",
        "samples": samples,
        "median": medians,
        "ratios": ratios,
        "skipped": skipped,
    }


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main()
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--runs", type=int, default=500)
        parser.add_argument("--reps", type=int, default=9)
        parser.add_argument("--delay", type=float, default=0.05)
        parser.add_argument("--only", default="", help="comma-separated variants")
        args = parser.parse_args()
        only = [v.strip() for v in args.only.split(",") if v.strip()] or None
        print(
            json.dumps(
                run(args.runs, args.reps, delay=args.delay, variants=only)["median"], indent=2
            )
        )
