"""Structured logging: JSON lines that parse, secrets that never reach the output."""

import io
import json
import logging

import pytest

from taskengine.datatypes import DataType
from taskengine.engine.events import LLMCall, RunInfo
from taskengine.engine.record import CapturedStateUnit
from taskengine.logs import (
    JsonFormatter,
    LoggingObserver,
    RedactingFilter,
    clear_registered_secrets,
    redact,
    register_secret,
    setup_logging,
)


@pytest.fixture
def logger():
    """A private logger whose handlers are removed after the test."""
    log = logging.getLogger("taskengine.test_logs")
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.propagate = True
    clear_registered_secrets()


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_parse_and_carry_extra_fields(logger):
    stream = io.StringIO()
    setup_logging("DEBUG", json=True, stream=stream, logger=logger.name)
    logger.info(
        "step %s finished", "parse", extra={"run_id": "r-1", "task_id": "parse", "duration_ms": 1.5}
    )
    try:
        raise ValueError("broken")
    except ValueError:
        logger.exception("it failed")
    first, second = lines(stream)
    assert first["message"] == "step parse finished"
    assert (first["level"], first["logger"], first["run_id"], first["task_id"]) == (
        "INFO",
        logger.name,
        "r-1",
        "parse",
    )
    assert first["duration_ms"] == 1.5
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "ERROR" and "ValueError: broken" in second["exc_info"]


def test_registered_secrets_are_masked_everywhere(logger):
    stream = io.StringIO()
    setup_logging("INFO", json=True, stream=stream, logger=logger.name)
    register_secret("hunter2-password")
    logger.info(
        "login with %s", "hunter2-password", extra={"headers": {"X-Key": "hunter2-password"}}
    )
    try:
        raise RuntimeError("bad credential hunter2-password")
    except RuntimeError:
        logger.exception("failed")
    text = stream.getvalue()
    assert "hunter2-password" not in text
    first, second = lines(stream)
    assert first["message"] == "login with ***" and first["headers"] == {"X-Key": "***"}
    assert "bad credential ***" in second["exc_info"]


def test_obvious_credentials_are_masked_without_registration():
    assert redact("Authorization: Bearer abcdefghijkl12345") == "Authorization: Bearer ***"
    assert redact("api_key=sk-abcdefghijklmnopqrstuv done") == "api_key=*** done"
    assert redact('{"password": "pa55word"}') == '{"password": "***"}'
    assert redact("short key sk-x and plain text") == "short key sk-x and plain text"


def test_short_values_are_not_registered():
    register_secret("abc")
    assert redact("abc abc") == "abc abc"
    clear_registered_secrets()


def test_text_format_and_user_handlers_coexist(logger):
    mine = io.StringIO()
    user_handler = logging.StreamHandler(mine)
    user_handler.addFilter(RedactingFilter())
    user_handler.setFormatter(JsonFormatter(static_fields={"service": "demo"}))
    logger.addHandler(user_handler)
    ours = io.StringIO()
    setup_logging("INFO", json=False, stream=ours, logger=logger.name)
    setup_logging("INFO", json=False, stream=ours, logger=logger.name)  # replaces, never stacks
    ours_installed = [h for h in logger.handlers if getattr(h, "_taskengine_handler", False)]
    assert len(ours_installed) == 1 and user_handler in logger.handlers
    register_secret("token-xyz-1")
    logger.warning("using token-xyz-1")
    assert ours.getvalue().count("using ***") == 1 and "WARNING" in ours.getvalue()
    assert lines(mine) == [{**lines(mine)[0], "message": "using ***", "service": "demo"}]


async def test_logging_observer_emits_structured_records(logger):
    stream = io.StringIO()
    setup_logging("DEBUG", json=True, stream=stream, logger=logger.name)
    observer = LoggingObserver(logger)
    run = RunInfo(run_id="r-9", chain_id="demo")
    await observer.on_run_start(run=run, input="x", input_type=DataType.STRING)
    await observer.on_step_end(run=run, step=CapturedStateUnit("a", "noop", duration_ns=2_000_000))
    await observer.on_step_end(run=run, step=CapturedStateUnit("b", "raw_string", error="boom"))
    await observer.on_retry(
        run=run, task_id="b", attempt=1, error=RuntimeError("boom"), delay_s=0.1
    )
    await observer.on_llm_call(run=run, task_id="b", call=LLMCall("fake", "m", 12.0, 3, 4))
    run.totals.update({"total_tokens": 7})
    await observer.on_run_end(
        run=run, status="failed", output=None, output_type=DataType.NIL, error=RuntimeError("x")
    )
    records = lines(stream)
    assert [r["message"] for r in records] == [
        "run started",
        "step a finished",
        "step b failed",
        "retrying task b after error: boom",
        "llm call fake/m 12.0 ms",
        "run failed: x",
    ]
    assert all(r["run_id"] == "r-9" for r in records)
    assert records[2]["level"] == "WARNING" and records[2]["handler"] == "raw_string"
    assert records[-1]["total_tokens"] == 7 and records[-1]["status"] == "failed"
