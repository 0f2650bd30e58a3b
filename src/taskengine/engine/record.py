"""The step record every run keeps (`CapturedStateUnit`), and the inspector's stack traces.

A stack trace holds a run's history, its breakpoints and, when paused, its execution state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from taskengine.datatypes import DataType

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition

__all__ = [
    "CapturedStateUnit",
    "ErrorResponse",
    "ExecutionState",
    "Inspector",
    "SimpleInspector",
    "SimpleStackTrace",
    "StackTrace",
]


@dataclass(slots=True)
class CapturedStateUnit:
    """What one executed step did, with the Go engine's JSON keys.

    `duration` is in nanoseconds as Go's `time.Duration` marshals; `durationMs` is added for
    people reading it. `error.error` is `""` when the step succeeded, as in Go.
    """

    task_id: str
    task_handler: str
    input_type: DataType = DataType.ANY
    output_type: DataType = DataType.ANY
    transition: str = ""
    duration_ns: int = 0
    error: str | None = None
    input: str = ""
    output: str = ""
    input_var: str = ""
    #: extra facts about the step (attempts, provider/model that answered, tokens …)
    meta: dict[str, Any] | None = None

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "taskID": self.task_id,
            "taskHandler": self.task_handler,
            "inputType": self.input_type.type_name,
            "outputType": self.output_type.type_name,
            "transition": self.transition,
            "duration": self.duration_ns,
            "durationMs": round(self.duration_ns / 1e6, 3),
            "error": {"error": self.error or ""},  # ErrorResponse, inlined: this runs every step
            "input": self.input,
            "output": self.output,
            "inputVar": self.input_var,
        }
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapturedStateUnit:
        err = data.get("error")
        if isinstance(err, dict):
            err = err.get("error")
        return cls(
            task_id=data.get("taskID", ""),
            task_handler=data.get("taskHandler", ""),
            input_type=DataType.from_string(data.get("inputType") or "any"),
            output_type=DataType.from_string(data.get("outputType") or "any"),
            transition=data.get("transition", ""),
            duration_ns=_duration_ns(data),
            error=err or None,
            input=data.get("input", ""),
            output=data.get("output", ""),
            input_var=data.get("inputVar", ""),
            meta=data.get("meta"),
        )


def _duration_ns(data: dict[str, Any]) -> int:
    """Nanoseconds from a stored or Go-written step (Go's `duration` is an integer of ns).

    Steps recorded before durations were nanoseconds hold a float of milliseconds.
    """
    raw = data.get("duration")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float):
        return round(raw * 1e6)
    millis = data.get("durationMs")
    return round(float(millis) * 1e6) if isinstance(millis, (int, float)) else 0


@dataclass(slots=True)
class ErrorResponse:
    """The `error` object of a captured step (Go: `ErrorResponse`): `{"error": message or ""}`."""

    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error or ""}


@dataclass(slots=True)
class ExecutionState:
    """Variables, their types and the task about to run (readable for a paused run)."""

    variables: dict[str, Any] = field(default_factory=dict)
    data_types: dict[str, DataType] = field(default_factory=dict)
    current_task: TaskDefinition | None = None


class StackTrace(Protocol):
    def record_step(self, step: CapturedStateUnit) -> None: ...
    def get_execution_history(self) -> list[CapturedStateUnit]: ...
    def set_breakpoint(self, task_id: str) -> None: ...
    def clear_breakpoints(self) -> None: ...
    def has_breakpoint(self, task_id: str) -> bool: ...


class Inspector(Protocol):
    def start(self) -> StackTrace: ...


class SimpleStackTrace:
    """History of a run and the breakpoints set on it."""

    __slots__ = ("_breakpoints", "_history", "_state")

    def __init__(self, breakpoints: set[str] | None = None) -> None:
        self._history: list[CapturedStateUnit] = []
        self._breakpoints: set[str] = set(breakpoints or ())
        self._state = ExecutionState()

    def record_step(self, step: CapturedStateUnit) -> None:
        self._history.append(step)

    def get_execution_history(self) -> list[CapturedStateUnit]:
        return list(self._history)

    def set_breakpoint(self, task_id: str) -> None:
        self._breakpoints.add(task_id)

    def clear_breakpoints(self) -> None:
        self._breakpoints.clear()

    def has_breakpoint(self, task_id: str) -> bool:
        return task_id in self._breakpoints

    @property
    def breakpoints(self) -> frozenset[str]:
        return frozenset(self._breakpoints)

    def set_current_state(self, state: ExecutionState) -> None:
        self._state = state

    def get_current_state(self) -> ExecutionState:
        return self._state


class SimpleInspector:
    """Creates a fresh stack trace per run, carrying breakpoints set on the inspector."""

    __slots__ = ("_breakpoints", "last")

    def __init__(self, breakpoints: set[str] | None = None) -> None:
        self._breakpoints = set(breakpoints or ())
        self.last: SimpleStackTrace | None = None

    def set_breakpoint(self, task_id: str) -> None:
        self._breakpoints.add(task_id)

    def start(self) -> SimpleStackTrace:
        self.last = SimpleStackTrace(self._breakpoints)
        return self.last
