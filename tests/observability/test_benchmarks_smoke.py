"""The observability benchmarks run and report every variant (nothing here is timed or judged)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks/` lives next to `src/`
    sys.path.insert(0, str(ROOT))

from benchmarks import otel_overhead, ui_page_load  # noqa: E402


async def test_otel_overhead_measures_three_variants_and_exports_only_when_on() -> None:
    figures = await otel_overhead.measure(steps=3, runs=1)
    assert all(figures[name] > 0 for name in ("off", "sampled_out", "exporting"))
    assert figures["spans_received"] == 2 * (1 + 3 * 2)  # warm-up + 1 run, root + step + tool


async def test_ui_page_load_serves_the_pages_of_a_long_run(tmp_path: Path) -> None:
    figures = await ui_page_load.measure(steps=20, repeat=1, folder=tmp_path)
    assert set(figures) == {"json GET /runs/{id}", "page GET /ui/runs/{id}", "page GET /ui"}
    assert figures["page GET /ui/runs/{id}"][1] > figures["page GET /ui"][1]
