"""`taskengine batch`: many inputs through one chain, in-process or through the queue's workers.

Inputs are JSON lines: an object with `input` (and optionally `key`), or any other JSON value
taken as the input itself. Each line gets a key (its `key`, else a digest of its input); the
results file gets one JSON line per input `{key, runId, status, output, outputType, error}`,
and a batch run again with the same results file skips the keys already succeeded there.
Through the queue, a line's run id is derived from the chain and its key, so a batch whose
client died follows the runs it had already queued instead of queueing them twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import Any

from taskengine.datatypes import to_jsonable
from taskengine.errors import ConflictError, DataConversionError, TaskEngineError

__all__ = ["BatchItem", "BatchTally", "read_done", "read_inputs", "run_batch"]


@dataclass(slots=True)
class BatchItem:
    key: str
    input: Any
    line: int


@dataclass(slots=True)
class BatchTally:
    """Counts a progress display reads: how many are done, failed, running, skipped."""

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    skipped: int = 0
    started: float = field(default_factory=monotonic)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def rate(self) -> float:
        elapsed = monotonic() - self.started
        return self.finished / elapsed if elapsed > 0 else 0.0


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_inputs(path: Path) -> list[BatchItem]:
    """The batch's inputs, each with its key; a bad line or a repeated key names its line."""
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataConversionError(f"cannot read {path}: {exc}", field="--inputs") from exc
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataConversionError(
                f"{path}:{number}: not a JSON line ({exc.msg}); write each input as JSON, "
                'e.g. "text" or {"key": "a1", "input": "text"}',
                field="--inputs",
            ) from None
        if isinstance(value, dict) and "input" in value:
            key = str(value["key"]) if value.get("key") is not None else _digest(value["input"])
            value = value["input"]
        else:
            key = _digest(value)
        if key in seen:
            raise DataConversionError(
                f"{path}:{number}: key {key!r} repeats line {seen[key]}; give each line a "
                'distinct "key"',
                field="--inputs",
            )
        seen[key] = number
        items.append(BatchItem(key, value, number))
    return items


def read_done(path: Path | None) -> set[str]:
    """Keys a previous batch already succeeded with, from its results file (if any)."""
    if path is None or not path.exists():
        return set()
    done: set[str] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: that input runs again
        if isinstance(row, dict) and row.get("status") == "succeeded" and "key" in row:
            done.add(str(row["key"]))
    return done


def _result_line(item: BatchItem, run_id: str | None, status: str, **rest: Any) -> dict[str, Any]:
    return {"key": item.key, "runId": run_id, "status": status, **rest}


async def _run_in_process(env: Any, chain: Any, item: BatchItem, input_type: str) -> dict:
    try:
        result = await env.exec_env(chain, item.input, input_type)
    except TaskEngineError as exc:
        return _result_line(item, exc.run_id, "failed", error=exc.to_dict())
    return _result_line(
        item,
        result.run_id,
        result.status,
        output=to_jsonable(result.output),
        outputType=result.output_type.type_name,
    )


def batch_run_id(chain: Any, key: str) -> str:
    """The run id of a batch line in the queue: the same chain and key give the same id."""
    definition = chain.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    return "b" + _digest([definition, key]) + _digest(key)


async def _submit_or_follow(env: Any, queue: Any, chain: Any, item: BatchItem, itype: str) -> str:
    """Queue the line's run, or follow the one an earlier attempt of this batch queued."""
    from taskengine.workers.submit import submit_run

    run_id = batch_run_id(chain, item.key)
    try:
        return await submit_run(env, queue, chain, item.input, itype, run_id=run_id)
    except ConflictError:
        record = await env.store.get_run(run_id)
        if record.status != "failed":
            return run_id
        return await submit_run(env, queue, chain, item.input, itype)  # a fresh try


async def _run_queued(env: Any, queue: Any, chain: Any, item: BatchItem, itype: str) -> dict:
    from taskengine.workers.submit import wait_for_run

    try:
        run_id = await _submit_or_follow(env, queue, chain, item, itype)
    except TaskEngineError as exc:
        return _result_line(item, None, "failed", error=exc.to_dict())
    record = await wait_for_run(env.store, run_id)
    if record.status == "succeeded":
        return _result_line(
            item, run_id, "succeeded", output=record.output, outputType=record.output_type
        )
    return _result_line(item, run_id, record.status, error=record.error)


async def run_batch(
    env: Any,
    chain: Any,
    items: list[BatchItem],
    *,
    input_type: str = "string",
    concurrency: int = 10,
    queue: Any = None,
    on_result: Callable[[dict[str, Any]], None],
    tally: BatchTally,
) -> BatchTally:
    """Run every item (at most `concurrency` at once); `on_result` gets each result line."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: BatchItem) -> None:
        async with gate:
            tally.running += 1
            try:
                if queue is None:
                    row = await _run_in_process(env, chain, item, input_type)
                else:
                    row = await _run_queued(env, queue, chain, item, input_type)
            finally:
                tally.running -= 1
        if row["status"] == "succeeded":
            tally.done += 1
        else:
            tally.failed += 1
        on_result(row)

    await asyncio.gather(*(one(item) for item in items))
    return tally
