"""Reproducible side-by-side benchmarks of taskengine against LangGraph and Burr.

Run everything with ``python -m benchmarks`` (see ``benchmarks/README.md``). The modules are
importable on their own so a test can run a tiny, untimed variant of each comparison.
"""

from __future__ import annotations

import importlib.util
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "has_module",
    "median",
    "no_tracing_env",
    "percentile",
    "save_figure",
    "worker_env",
]

#: the repository checkout the benchmarks run from
ROOT = Path(__file__).resolve().parents[1]


def has_module(name: str) -> bool:
    """True when `name` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values (a variant that was skipped)."""
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by the nearest-rank method, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def no_tracing_env() -> None:
    """Keep the compared libraries from tracing or phoning home while they are timed."""
    os.environ["LANGSMITH_TRACING"] = "false"
    os.environ["LANGCHAIN_TRACING_V2"] = "false"


def worker_env() -> dict[str, str]:
    """The environment for a benchmark's worker subprocess: this checkout first on the path."""
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out a matplotlib figure, write it to `path` (making its folder) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
