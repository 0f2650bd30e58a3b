"""Metrics and cost: price math, observers feeding sinks, the Prometheus exposition."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskengine.chain import load_chain
from taskengine.datatypes import DataType
from taskengine.engine import SimpleEnv
from taskengine.engine.events import LLMCall, RunInfo
from taskengine.engine.record import CapturedStateUnit
from taskengine.errors import ConfigError, TaskExecutionError
from taskengine.metrics import (
    CostObserver,
    InMemoryMetrics,
    MetricsObserver,
    MetricsSink,
    PriceTable,
    PrometheusMetrics,
)

PRICES = {
    "gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10.0},
    "llama3*": {"input_per_1m": 0.0, "output_per_1m": 0.0},
}


def samples(metrics: PrometheusMetrics) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition text, keyed by (name, labels)."""
    text = metrics.render_latest().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_price_math_and_lookup():
    table = PriceTable(PRICES)
    assert table.cost("gpt-4o", 1000, 500) == pytest.approx(0.0025 + 0.005)
    assert table.cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)
    assert table.cost("GPT-4o", 10, 0) == pytest.approx(0.000025)  # case-insensitive
    assert table.cost("openai/gpt-4o", 1000, 0) == pytest.approx(0.0025)  # provider prefix
    assert table.cost("llama3.1:8b", 5000, 5000) == 0.0  # glob
    assert table.cost("unknown-model", 1000, 1000) is None
    assert len(table) == 2 and bool(table) and not PriceTable()
    with pytest.raises(ConfigError, match=r"prices\.bad: a price needs numeric"):
        PriceTable({"bad": {"input_per_1m": "cheap"}})
    with pytest.raises(ConfigError, match="cannot be negative"):
        PriceTable({"neg": {"input_per_1m": -1, "output_per_1m": 0}})


async def test_cost_observer_prices_calls():
    observer = CostObserver(PRICES)
    run = RunInfo(run_id="r", chain_id="c")
    await observer.on_run_start(run=run, input="x", input_type=DataType.STRING)
    assert run.totals == {"cost": 0.0}
    priced = LLMCall("openai", "gpt-4o", 100.0, input_tokens=2000, output_tokens=1000)
    await observer.on_llm_call(run=run, task_id="a", call=priced)
    assert priced.cost == pytest.approx(0.015)
    unpriced = LLMCall("x", "mystery", 10.0, 5, 5)
    await observer.on_llm_call(run=run, task_id="a", call=unpriced)
    assert unpriced.cost is None and run.totals["unpriced_calls"] == 1
    already = LLMCall("x", "gpt-4o", 1.0, 1, 1, cost=9.0)
    await observer.on_llm_call(run=run, task_id="a", call=already)
    assert already.cost == 9.0  # a provider-reported cost wins


async def test_metrics_observer_maps_events_to_the_sink():
    sink = InMemoryMetrics()
    assert isinstance(sink, MetricsSink)
    observer = MetricsObserver(sink, PRICES)
    run = RunInfo(run_id="r", chain_id="demo")
    await observer.on_run_start(run=run, input="x", input_type=DataType.STRING)
    await observer.on_step_start(run=run, task_id="ask", handler="raw_string", attempt=1)
    await observer.on_retry(run=run, task_id="ask", attempt=1, error=RuntimeError("x"), delay_s=0.0)
    await observer.on_llm_call(
        run=run, task_id="ask", call=LLMCall("openai", "gpt-4o", 250.0, 1000, 100)
    )
    await observer.on_step_end(
        run=run, step=CapturedStateUnit("ask", "raw_string", duration_ns=300_000_000)
    )
    await observer.on_step_end(
        run=run, step=CapturedStateUnit("bad", "noop", duration_ns=1_000_000, error="boom")
    )
    await observer.on_run_end(
        run=run, status="failed", output=None, output_type=DataType.NIL, error=None
    )
    assert sink.names() == [
        "run_started",
        "retry",
        "llm_call",
        "step_finished",
        "step_finished",
        "run_finished",
    ]
    events = dict(sink.events[:3])
    assert events["retry"] == ("raw_string",)
    assert events["llm_call"] == ("openai", "gpt-4o", 0.25, 1000, 100, pytest.approx(0.0035))
    assert sink.events[3][1] == ("raw_string", 0.3, "ok") and sink.events[4][1][2] == "error"
    chain, status, duration = sink.events[5][1]
    assert (chain, status) == ("demo", "failed") and 0 <= duration < 5


async def test_prometheus_exposition_after_feeding_the_observer():
    metrics = PrometheusMetrics()
    observer = MetricsObserver(metrics, PRICES)
    run = RunInfo(run_id="r1", chain_id="demo")
    await observer.on_run_start(run=run, input="x", input_type=DataType.STRING)
    await observer.on_step_start(run=run, task_id="ask", handler="raw_string", attempt=1)
    await observer.on_retry(run=run, task_id="ask", attempt=1, error=RuntimeError("x"), delay_s=0.0)
    await observer.on_llm_call(
        run=run, task_id="ask", call=LLMCall("openai", "gpt-4o", 1500.0, 1000, 200)
    )
    await observer.on_step_end(
        run=run, step=CapturedStateUnit("ask", "raw_string", duration_ns=int(1600.0 * 1e6))
    )
    await observer.on_run_end(
        run=run, status="succeeded", output="y", output_type=DataType.STRING, error=None
    )
    got = samples(metrics)

    def value(name, **labels):
        return got[(name, frozenset(labels.items()))]

    assert value("taskengine_runs_started_total", chain="demo") == 1
    assert value("taskengine_runs_finished_total", chain="demo", status="succeeded") == 1
    assert value("taskengine_steps_total", handler="raw_string", status="ok") == 1
    assert value("taskengine_step_duration_seconds_count", handler="raw_string") == 1
    assert value("taskengine_step_duration_seconds_sum", handler="raw_string") == pytest.approx(1.6)
    assert value("taskengine_step_duration_seconds_bucket", handler="raw_string", le="2.5") == 1
    assert value("taskengine_step_duration_seconds_bucket", handler="raw_string", le="1.0") == 0
    assert value(
        "taskengine_llm_latency_seconds_sum", provider="openai", model="gpt-4o"
    ) == pytest.approx(1.5)
    assert (
        value("taskengine_llm_tokens_total", provider="openai", model="gpt-4o", kind="input")
        == 1000
    )
    assert (
        value("taskengine_llm_tokens_total", provider="openai", model="gpt-4o", kind="output")
        == 200
    )
    assert value("taskengine_llm_cost_total", provider="openai", model="gpt-4o") == pytest.approx(
        0.0045
    )
    assert value("taskengine_retries_total", handler="raw_string") == 1
    assert metrics.content_type.startswith("text/plain")


def test_two_exporters_do_not_clash_and_shared_registry_works():
    from prometheus_client import CollectorRegistry

    a, b = PrometheusMetrics(), PrometheusMetrics()
    a.run_started("x")
    assert ("taskengine_runs_started_total", frozenset({("chain", "x")})) in samples(a)
    assert not any(name == "taskengine_runs_started_total" for name, _ in samples(b))
    shared = CollectorRegistry()
    PrometheusMetrics(shared, namespace="app").retry("noop")
    assert b"app_retries_total" in PrometheusMetrics(shared, namespace="other").render_latest()


class ScriptedLLMExec:
    """A task executor that reports one LLM call per task, like a provider-backed handler."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first

    async def task_exec(self, ctx, task, input, input_type):
        if self.fail_first:
            self.fail_first -= 1
            raise TaskExecutionError("flaky", task_id=task.id)
        await ctx.emit_llm_call(
            task.id, LLMCall("fake", "gpt-4o", 40.0, input_tokens=1000, output_tokens=500)
        )
        return f"answer to {input}", DataType.STRING, "ok"


async def test_engine_run_reports_cost_totals_and_metrics():
    chain = load_chain(
        {
            "id": "priced",
            "tasks": [
                {
                    "id": "one",
                    "handler": "raw_string",
                    "prompt_template": "q1",
                    "retry_on_failure": 2,
                    "transition": {"branches": [{"operator": "default", "goto": "two"}]},
                },
                {
                    "id": "two",
                    "handler": "raw_string",
                    "prompt_template": "q2",
                    "transition": {"branches": [{"operator": "default", "goto": "end"}]},
                },
            ],
        }
    )
    metrics = PrometheusMetrics()
    env = SimpleEnv(
        ScriptedLLMExec(fail_first=1),
        observers=[CostObserver(PRICES), MetricsObserver(metrics)],
        retry_base=0.001,
        retry_max=0.002,
    )
    result = await env.exec_env(chain, "hello")
    assert result.status == "succeeded"
    totals = result.totals
    assert (totals["input_tokens"], totals["output_tokens"], totals["total_tokens"]) == (
        2000,
        1000,
        3000,
    )
    assert totals["llm_calls"] == 2 and totals["llm_ms"] == pytest.approx(80.0)
    assert totals["cost"] == pytest.approx(2 * (1000 * 2.5 + 500 * 10.0) / 1e6)
    assert result.to_dict()["totals"]["cost"] == pytest.approx(0.015)
    got = samples(metrics)
    assert got[("taskengine_retries_total", frozenset({("handler", "raw_string")}))] == 1
    assert (
        got[("taskengine_steps_total", frozenset({("handler", "raw_string"), ("status", "ok")}))]
        == 2
    )
    assert (
        got[
            (
                "taskengine_runs_finished_total",
                frozenset({("chain", "priced"), ("status", "succeeded")}),
            )
        ]
        == 1
    )
    assert got[
        ("taskengine_llm_cost_total", frozenset({("provider", "fake"), ("model", "gpt-4o")}))
    ] == (pytest.approx(0.015))
