"""Logging set-up: plain `logging`, an optional JSON formatter, and redaction of secrets.

Everything here is standard library logging, so users attach their own handlers as usual.
Secret values the engine learns about (from the secret store or masked config keys) are
registered here and masked by `RedactingFilter`, which `setup_logging` puts on its handler;
add the same filter to your own handlers to get the same guarantee.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from taskengine.engine.events import RunObserver
from taskengine.observability.redaction import DEFAULT_REDACTOR, MASK

if TYPE_CHECKING:
    from taskengine.datatypes import DataType
    from taskengine.engine.events import LLMCall, RunInfo
    from taskengine.engine.record import CapturedStateUnit

__all__ = [
    "MASK",
    "JsonFormatter",
    "LoggingObserver",
    "RedactingFilter",
    "clear_registered_secrets",
    "redact",
    "register_secret",
    "register_secrets",
    "setup_logging",
]


# Standard LogRecord attributes: everything else on a record came from `extra=`.
_RESERVED = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


def register_secret(value: Any) -> None:
    """Mask `value` (of any type) in every record that passes a RedactingFilter from now on."""
    DEFAULT_REDACTOR.add(value)


def register_secrets(values: Iterable[Any]) -> None:
    for value in values:
        register_secret(value)


def clear_registered_secrets() -> None:
    """Forget every registered value (for tests and long-lived processes that rotate keys)."""
    DEFAULT_REDACTOR.clear()


def redact(text: str) -> str:
    """`text` with registered secrets and obvious credentials replaced by `***`."""
    return DEFAULT_REDACTOR.scrub(text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    return DEFAULT_REDACTOR.value(value)


class RedactingFilter(logging.Filter):
    """Masks secrets in the message, its arguments, `extra` fields and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for the handler to report
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED and isinstance(value, str | dict | list | tuple):
                setattr(record, key, _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then any `extra` fields."""

    def __init__(self, *, static_fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._static = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(self._static)
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(
    level: str | int = "INFO",
    json: bool = False,
    *,
    stream: IO[str] | None = None,
    logger: str | None = "taskengine",
) -> logging.Handler:
    """Attach one redacting handler (JSON or text) to `logger` ("" or None: the root logger).

    Calling it again replaces the handler it installed before, never the user's own handlers.
    """
    target = logging.getLogger(logger or None)
    for old in [h for h in target.handlers if getattr(h, "_taskengine_handler", False)]:
        target.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._taskengine_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    target.addHandler(handler)
    target.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


class LoggingObserver(RunObserver):
    """Logs run and step events with run_id/task_id as structured `extra` fields."""

    def __init__(self, logger: logging.Logger | str = "taskengine.run") -> None:
        self.log = logging.getLogger(logger) if isinstance(logger, str) else logger

    async def on_run_start(self, *, run: RunInfo, input: Any, input_type: DataType) -> None:
        self.log.info("run started", extra={"run_id": run.run_id, "chain_id": run.chain_id})

    async def on_step_end(self, *, run: RunInfo, step: CapturedStateUnit) -> None:
        if not self.log.isEnabledFor(logging.DEBUG) and not step.error:
            return
        self.log.log(
            logging.WARNING if step.error else logging.DEBUG,
            "step %s %s",
            step.task_id,
            "failed" if step.error else "finished",
            extra={
                "run_id": run.run_id,
                "task_id": step.task_id,
                "handler": step.task_handler,
                "duration_ms": round(step.duration_ms, 3),
                "transition": step.transition,
                "error": step.error,
            },
        )

    async def on_retry(
        self, *, run: RunInfo, task_id: str, attempt: int, error: BaseException, delay_s: float
    ) -> None:
        self.log.info(
            "retrying task %s after error: %s",
            task_id,
            error,
            extra={
                "run_id": run.run_id,
                "task_id": task_id,
                "attempt": attempt,
                "delay_s": delay_s,
            },
        )

    async def on_llm_call(self, *, run: RunInfo, task_id: str, call: LLMCall) -> None:
        self.log.debug(
            "llm call %s/%s %.1f ms",
            call.provider,
            call.model,
            call.latency_ms,
            extra={
                "run_id": run.run_id,
                "task_id": task_id,
                "provider": call.provider,
                "model": call.model,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
            },
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
        extra = {"run_id": run.run_id, "chain_id": run.chain_id, "status": status, **run.totals}
        if error is not None:
            self.log.error("run %s: %s", status, error, extra=extra)
        else:
            self.log.info("run %s", status, extra=extra)
