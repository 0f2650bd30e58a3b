"""Metrics and cost: a small sink protocol, a Prometheus exporter, and per-run token/cost totals.

`MetricsObserver` turns run events into `MetricsSink` calls; `CostObserver` prices every LLM
call with a `PriceTable`, so the run totals the engine keeps in `RunInfo.totals`
(`input_tokens`, `output_tokens`, `total_tokens`, `llm_ms`, `llm_calls`) gain a `cost`, which
`--json` and `runs show` report. Plug in your own sink by implementing the five methods of `MetricsSink`.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from taskengine.engine.events import RunObserver
from taskengine.errors import ConfigError

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine.events import LLMCall, RunInfo
    from taskengine.engine.record import CapturedStateUnit

__all__ = [
    "CostObserver",
    "InMemoryMetrics",
    "MetricsObserver",
    "MetricsSink",
    "Price",
    "PriceTable",
    "PrometheusMetrics",
]


# --- prices ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    """Price of one model in currency units per one million input / output tokens."""

    input_per_1m: float
    output_per_1m: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1_000_000


class PriceTable:
    """Looks a model up by exact name, case-insensitively, without a `provider/` prefix, or glob."""

    def __init__(self, prices: Mapping[str, Any] | None = None) -> None:
        self._exact: dict[str, Price] = {}
        self._globs: list[tuple[str, Price]] = []
        for model, entry in (prices or {}).items():
            price = _as_price(model, entry)
            if any(ch in model for ch in "*?["):
                self._globs.append((model.lower(), price))
            else:
                self._exact[model.lower()] = price

    def __bool__(self) -> bool:
        return bool(self._exact or self._globs)

    def __len__(self) -> int:
        return len(self._exact) + len(self._globs)

    def price(self, model: str) -> Price | None:
        name = (model or "").lower()
        candidates = [name]
        if "/" in name:
            candidates.append(name.split("/", 1)[1])
        for candidate in candidates:
            if candidate in self._exact:
                return self._exact[candidate]
        for candidate in candidates:
            for pattern, price in self._globs:
                if fnmatch.fnmatchcase(candidate, pattern):
                    return price
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """Cost of one call, or None when the model has no price."""
        price = self.price(model)
        return None if price is None else price.cost(input_tokens or 0, output_tokens or 0)


def _as_price(model: str, entry: Any) -> Price:
    if isinstance(entry, Price):
        return entry
    data = entry.model_dump() if hasattr(entry, "model_dump") else entry
    try:
        price = Price(float(data["input_per_1m"]), float(data["output_per_1m"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            "a price needs numeric input_per_1m and output_per_1m", key_path=f"prices.{model}"
        ) from exc
    if price.input_per_1m < 0 or price.output_per_1m < 0:
        raise ConfigError("prices cannot be negative", key_path=f"prices.{model}")
    return price


# --- sinks -------------------------------------------------------------------------------


@runtime_checkable
class MetricsSink(Protocol):
    """Where measurements go; implement these to feed your own monitoring system."""

    def run_started(self, chain: str) -> None: ...

    def run_finished(self, chain: str, status: str, duration_s: float) -> None: ...

    def step_finished(self, handler: str, duration_s: float, status: str) -> None: ...

    def llm_call(
        self,
        provider: str,
        model: str,
        latency_s: float,
        input_tokens: int,
        output_tokens: int,
        cost: float | None,
    ) -> None: ...

    def retry(self, handler: str) -> None: ...


@dataclass
class InMemoryMetrics:
    """A sink that just remembers every call (handy in tests and for quick inspection)."""

    events: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def run_started(self, chain: str) -> None:
        self.events.append(("run_started", (chain,)))

    def run_finished(self, chain: str, status: str, duration_s: float) -> None:
        self.events.append(("run_finished", (chain, status, duration_s)))

    def step_finished(self, handler: str, duration_s: float, status: str) -> None:
        self.events.append(("step_finished", (handler, duration_s, status)))

    def llm_call(
        self,
        provider: str,
        model: str,
        latency_s: float,
        input_tokens: int,
        output_tokens: int,
        cost: float | None,
    ) -> None:
        self.events.append(
            ("llm_call", (provider, model, latency_s, input_tokens, output_tokens, cost))
        )

    def retry(self, handler: str) -> None:
        self.events.append(("retry", (handler,)))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


_STEP_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class PrometheusMetrics:
    """A MetricsSink backed by prometheus-client; `render_latest()` serves `/metrics`.

    With `registry=None` the metrics live in a private `CollectorRegistry`, so several
    instances (tests, several apps in one process) never clash; pass
    `prometheus_client.REGISTRY` to share the process-wide default one.
    """

    def __init__(self, registry: Any = None, *, namespace: str = "taskengine") -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ConfigError(
                "Prometheus metrics need prometheus-client: pip install 'taskengine[metrics]'"
            ) from exc
        self._prom = prom
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        ns, reg = namespace, self.registry
        self.runs_started = prom.Counter(
            "runs_started", "Runs started.", ["chain"], namespace=ns, registry=reg
        )
        self.runs_finished = prom.Counter(
            "runs_finished",
            "Runs finished, by final status.",
            ["chain", "status"],
            namespace=ns,
            registry=reg,
        )
        self.run_duration = prom.Histogram(
            "run_duration_seconds", "Wall time of a run.", ["chain"], namespace=ns, registry=reg,
            buckets=_STEP_BUCKETS,
        )  # fmt: skip
        self.steps = prom.Counter(
            "steps",
            "Steps executed, by handler and outcome.",
            ["handler", "status"],
            namespace=ns,
            registry=reg,
        )
        self.step_duration = prom.Histogram(
            "step_duration_seconds", "Duration of one step, by handler.", ["handler"], namespace=ns,
            registry=reg, buckets=_STEP_BUCKETS,
        )  # fmt: skip
        self.llm_latency = prom.Histogram(
            "llm_latency_seconds", "Latency of one LLM call.", ["provider", "model"], namespace=ns,
            registry=reg, buckets=_LLM_BUCKETS,
        )  # fmt: skip
        self.llm_tokens = prom.Counter(
            "llm_tokens", "Tokens used, by kind (input/output).", ["provider", "model", "kind"],
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.llm_cost = prom.Counter(
            "llm_cost", "Cost of LLM calls per the configured price table.", ["provider", "model"],
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.retries = prom.Counter(
            "retries", "Task retries, by handler.", ["handler"], namespace=ns, registry=reg
        )

    @property
    def content_type(self) -> str:
        return self._prom.CONTENT_TYPE_LATEST

    def render_latest(self) -> bytes:
        """The exposition text for a `/metrics` response (see `content_type`)."""
        return self._prom.generate_latest(self.registry)

    def run_started(self, chain: str) -> None:
        self.runs_started.labels(chain).inc()

    def run_finished(self, chain: str, status: str, duration_s: float) -> None:
        self.runs_finished.labels(chain, status).inc()
        self.run_duration.labels(chain).observe(max(duration_s, 0.0))

    def step_finished(self, handler: str, duration_s: float, status: str) -> None:
        self.steps.labels(handler, status).inc()
        self.step_duration.labels(handler).observe(max(duration_s, 0.0))

    def llm_call(
        self,
        provider: str,
        model: str,
        latency_s: float,
        input_tokens: int,
        output_tokens: int,
        cost: float | None,
    ) -> None:
        self.llm_latency.labels(provider, model).observe(max(latency_s, 0.0))
        if input_tokens:
            self.llm_tokens.labels(provider, model, "input").inc(input_tokens)
        if output_tokens:
            self.llm_tokens.labels(provider, model, "output").inc(output_tokens)
        if cost:
            self.llm_cost.labels(provider, model).inc(cost)

    def retry(self, handler: str) -> None:
        self.retries.labels(handler).inc()


# --- observers ---------------------------------------------------------------------------


def _prices(prices: PriceTable | Mapping[str, Any] | None) -> PriceTable:
    return prices if isinstance(prices, PriceTable) else PriceTable(prices)


class CostObserver(RunObserver):
    """Prices every LLM call with a PriceTable so the run's totals carry its cost.

    The engine keeps `RunInfo.totals` (tokens, `llm_ms`, `llm_calls`) and adds `LLMCall.cost`
    to `totals["cost"]` after the observers ran; this observer fills in that cost. Put it
    before other observers that read `call.cost`. Calls to models without a price keep
    `cost=None` and are counted in `totals["unpriced_calls"]` rather than guessed.
    """

    def __init__(self, prices: PriceTable | Mapping[str, Any] | None = None) -> None:
        self.prices = _prices(prices)

    async def on_run_start(self, *, run: RunInfo, input: Any, input_type: DataType) -> None:
        if self.prices:
            run.totals.setdefault("cost", 0.0)

    async def on_llm_call(self, *, run: RunInfo, task_id: str, call: LLMCall) -> None:
        if call.cost is None:
            call.cost = self.prices.cost(call.model, call.input_tokens, call.output_tokens)
        if call.cost is None and self.prices:
            run.totals["unpriced_calls"] = run.totals.get("unpriced_calls", 0) + 1


class MetricsObserver(RunObserver):
    """Maps run events onto a MetricsSink (runs, steps by handler, LLM calls, retries)."""

    def __init__(
        self, sink: MetricsSink, prices: PriceTable | Mapping[str, Any] | None = None
    ) -> None:
        self.sink = sink
        self.prices = _prices(prices)
        # handler of each task seen in a live run, so retries can be labelled by handler
        self._handlers: dict[str, dict[str, str]] = {}
        self._started: dict[str, float] = {}

    async def on_run_start(self, *, run: RunInfo, input: Any, input_type: DataType) -> None:
        self._handlers[run.run_id] = {}
        self._started[run.run_id] = time.perf_counter()
        self.sink.run_started(run.chain_id)

    async def on_step_start(
        self, *, run: RunInfo, task_id: str, handler: str, attempt: int
    ) -> None:
        self._handlers.setdefault(run.run_id, {})[task_id] = handler

    async def on_step_end(self, *, run: RunInfo, step: CapturedStateUnit) -> None:
        self._handlers.setdefault(run.run_id, {})[step.task_id] = step.task_handler
        status = "error" if step.error else "ok"
        self.sink.step_finished(step.task_handler, step.duration_ms / 1000.0, status)

    async def on_retry(
        self, *, run: RunInfo, task_id: str, attempt: int, error: BaseException, delay_s: float
    ) -> None:
        handler = self._handlers.get(run.run_id, {}).get(task_id, "unknown")
        self.sink.retry(handler)

    async def on_llm_call(self, *, run: RunInfo, task_id: str, call: LLMCall) -> None:
        cost = call.cost
        if cost is None:
            cost = self.prices.cost(call.model, call.input_tokens, call.output_tokens)
        self.sink.llm_call(
            call.provider,
            call.model,
            call.latency_ms / 1000.0,
            call.input_tokens,
            call.output_tokens,
            cost,
        )

    async def on_run_end(
        self,
        *,
        run: RunInfo,
        status: str,
        output: Any,
        output_type: DataType,
        error: BaseException | None,
    ) -> None:
        self._handlers.pop(run.run_id, None)
        started = self._started.pop(run.run_id, None)
        duration = time.perf_counter() - started if started is not None else 0.0
        self.sink.run_finished(run.chain_id, status, duration)
