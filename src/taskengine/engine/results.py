"""What a run returns: `RunResult`, which also unpacks like the seed's `(output, type, state)`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType, to_jsonable

if TYPE_CHECKING:
    from taskengine.engine.record import CapturedStateUnit
    from taskengine.errors import TaskEngineError

__all__ = ["RunResult"]


class RunResult:
    """The outcome of a run; unpacks like the seed's `(output, output_type, state)`."""

    __slots__ = (
        "chain_id",
        "error",
        "output",
        "output_type",
        "paused_at",
        "run_id",
        "state",
        "status",
        "totals",
    )

    def __init__(
        self,
        *,
        run_id: str,
        chain_id: str,
        status: str,
        output: Any,
        output_type: DataType,
        state: list[CapturedStateUnit],
        error: TaskEngineError | None = None,
        totals: dict[str, float] | None = None,
        paused_at: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.chain_id = chain_id
        self.status = status
        self.output = output
        self.output_type = output_type
        self.state = state
        self.error = error
        self.totals = totals or {}
        self.paused_at = paused_at

    def __iter__(self) -> Iterator[Any]:
        return iter((self.output, self.output_type, self.state))

    def to_dict(self) -> dict[str, Any]:
        """The pinned `--json` shape: runId, output, outputType, state, plus status and totals."""
        out: dict[str, Any] = {
            "runId": self.run_id,
            "chainId": self.chain_id,
            "status": self.status,
            "output": to_jsonable(self.output),
            "outputType": self.output_type.type_name,
            "state": [unit.to_dict() for unit in self.state],
            "totals": self.totals,
        }
        if self.paused_at:
            out["pausedAt"] = self.paused_at
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out
