"""The performance targets of issues 8 and 21, read from one results document, and their chart.

Each target is a row: what is measured, the value, the limit, whether lower is better, and
whether it is met (None when that benchmark did not run). The chart shows every row as the share
of its limit it uses, so targets in µs, ms and ratios fit on one axis: a bar left of 1.0 is met.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks import save_figure
from benchmarks.startup import TARGETS_MS as STARTUP_LIMITS_MS

__all__ = ["draw_targets_chart", "targets"]


def _row(
    issue: int, name: str, value: float | None, limit: float, at_most: bool, unit: str
) -> dict[str, Any]:
    ok = None if value is None else (value <= limit if at_most else value >= limit)
    return {
        "issue": issue,
        "target": name,
        "value": value,
        "limit": limit,
        "at_most": at_most,
        "unit": unit,
        "ok": ok,
    }


def _figures(doc: dict[str, Any], script: str) -> dict[str, Any]:
    """What a stand-alone script (run with --only) wrote as its figures ({} when it did not run)."""
    return ((doc.get("extras") or {}).get(script) or {}).get("figures") or {}


def _step_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    step = doc.get("step_us") or {}
    overhead = doc.get("step_overhead") or {}
    headline = overhead.get("headline_shape", "loop")
    ratios = dict((overhead.get("ratios") or {}).get(headline, {}))
    for key, bound in (overhead.get("ratio_bounds") or {}).get(headline, {}).items():
        if bound != "at_least":  # an upper bound cannot show a "≥" target is met
            ratios[key] = None
    return [
        _row(8, "in-memory µs/step", step.get("taskengine_memory"), 10.0, True, "µs"),
        _row(8, "Burr / taskengine (memory)", ratios.get("burr/taskengine_memory"), 5.0, False, "×"),
        _row(8, "LangGraph sync / taskengine (memory)",
             ratios.get("langgraph_sync/taskengine_memory"), 30.0, False, "×"),
        _row(8, "SQLite µs/step", step.get("taskengine_sqlite"), 60.0, True, "µs"),
        _row(8, "LangGraph+SqliteSaver / taskengine (SQLite)",
             ratios.get("langgraph_sqlite/taskengine_sqlite"), 15.0, False, "×"),
    ]  # fmt: skip


def _service_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    conc = ((doc.get("concurrency") or {}).get("ratios") or {}).get("taskengine/baseline") or {}
    imp = doc.get("import_ms") or {}
    startup = (doc.get("startup") or {}).get("median_ms") or {}
    pg = _figures(doc, "pg_concurrency").get("ratios") or {}
    server = _figures(doc, "server_load").get("vs_floor") or {}
    rows = [
        _row(8, "concurrency wall / bare baseline", conc.get("wall"), 1.3, True, "×"),
        _row(8, "concurrency peak RSS / bare baseline", conc.get("peak_rss"), 1.5, True, "×"),
        _row(8, "import taskengine", imp.get("taskengine"), 150.0, True, "ms"),
    ]
    for endpoint in ("/tasks", "/openai"):
        figures = server.get(endpoint) or {}
        rows.append(_row(21, f"{endpoint}: floor req/s / {endpoint} req/s", figures.get("rps"),
                         1.5, True, "×"))  # fmt: skip
        rows.append(_row(21, f"{endpoint}: p99 / floor p99", figures.get("p99"), 1.5, True, "×"))
    rows += [
        _row(21, "PostgreSQL wall / in-memory (500 × 3 steps)", pg.get("postgres/memory"),
             1.3, True, "×"),
        _row(21, "PostgreSQL wall / LangGraph + Postgres", pg.get("postgres/langgraph_pg"),
             1.0, True, "×"),
        _row(21, "taskengine run (one task, SQLite)", startup.get("taskengine_run"),
             STARTUP_LIMITS_MS["taskengine_run"][1], True, "ms"),
        _row(21, "taskengine --help", startup.get("taskengine_help"),
             STARTUP_LIMITS_MS["taskengine_help"][1], True, "ms"),
    ]  # fmt: skip
    return rows


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value and whether it is met (None: not measured)."""
    return _step_targets(doc) + _service_targets(doc)


def _share(row: dict[str, Any]) -> float:
    """How much of its limit a measured row uses: ≤ 1 is met, whichever way the target points."""
    value, limit = row["value"], row["limit"]
    return value / limit if row["at_most"] else limit / value


def draw_targets_chart(doc: dict[str, Any], path: str | Path) -> Path | None:
    """Horizontal bars, one per measured target, at the share of its limit; None without
    matplotlib or when nothing was measured."""
    rows = [r for r in doc.get("targets") or [] if r["value"]]
    if not rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  no targets chart: matplotlib is not installed", file=sys.stderr)
        return None
    rows.reverse()  # matplotlib draws the first bar at the bottom
    shares = [_share(r) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.34 * len(rows) + 1.4), dpi=120)
    colours = ["#3f8f4f" if r["ok"] else "#c0392b" for r in rows]
    bars = ax.barh(range(len(rows)), shares, color=colours)
    for bar, row in zip(bars, rows, strict=True):
        sign = "≤" if row["at_most"] else "≥"
        text = f"{row['value']:,.3g} {row['unit']} (target {sign} {row['limit']:g})"
        ax.annotate(text, (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)  # fmt: skip
    ax.axvline(1.0, color="#333333", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"#{r['issue']} {r['target']}" for r in rows], fontsize=7)
    ax.set_xlim(0, max(1.6, max(shares) * 1.45))
    ax.set_xlabel("share of the target used (measured / limit; left of the dashed line is met)")
    env = doc["environment"]
    ax.set_title(f"Performance targets — {env['date'][:10]}, {env['cpu']} × {env['cores']}",
                 fontsize=9)  # fmt: skip
    return save_figure(fig, path)
