"""The engine: runs a chain as a state machine, records every step, resumes durable runs.

Modules, in the order a run meets them:

* `env`: `SimpleEnv`, the entry points (`exec_env`, `resume`) and what they check first.
* `plan`: the chain compiled for the loop (one slots `Step` per task).
* `loop`: one run's loop, in named phases: input, attempt with retry, on failure, on success.
* `context`: the per-run `ExecContext` handlers see, and the run totals it keeps.
* `output`: what becomes of a step's output (compose, print).
* `retry`: backoff between attempts.
* `journal`: everything a run leaves behind: step history, inspector trace, checkpoints.
* `leases`: who holds a durable run, heartbeats, taking over a dead holder's lease.
* `resume`: continuing a run from its last checkpoint.
* `events`, `observers`, `callback`: the observer protocol, its per-event fan-out, and the
  adapter that feeds events to a plain callback.
* `schema`: checking a step's output against its `output_schema`.
* `record`, `results`: the step record (`CapturedStateUnit`) and a run's `RunResult`.

Names load on first use: handlers and observers import `taskengine.engine.events` and
`taskengine.engine.record`, and the loop imports those handlers, so this package must not
import the loop when it is itself imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Engine", "EnvExecutor", "EventCallback", "RunResult", "SimpleEnv"]

# name -> submodule that defines it
_EXPORTS = {
    "Engine": "env",
    "EnvExecutor": "env",
    "EventCallback": "callback",
    "RunResult": "results",
    "SimpleEnv": "env",
    "_check_input_size": "env",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from taskengine.engine.callback import EventCallback
    from taskengine.engine.env import Engine, EnvExecutor, SimpleEnv
    from taskengine.engine.results import RunResult
