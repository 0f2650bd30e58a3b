"""`taskengine batch`: in-process and through workers (one SIGKILLed mid-batch), idempotent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .conftest import CHAIN, EXE, STEPS, wait_until
from .helpers import client, in_process_outputs


def write_chain(tmp_path: Path) -> Path:
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(CHAIN))
    return path


def results(path: Path) -> dict[str, dict]:
    """Last result line per key."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


async def test_in_process_batch_reports_each_line_and_reruns_only_failures(cluster, tmp_path):
    chain = write_chain(tmp_path)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        '"first"\n{"key": "second", "input": "second"}\n{"key": "bad", "input": "explode"}\n'
    )
    out = tmp_path / "out.jsonl"
    expected = await in_process_outputs(cluster, CHAIN, ["first", "second"])

    first = cluster.cli("batch", chain, "--inputs", inputs, "--out", out)
    assert first.returncode == 1, first.stderr  # one line failed
    assert "2 succeeded, 1 failed, 0 skipped" in first.stderr
    rows = results(out)
    assert rows["second"]["output"] == expected["second"]
    assert [r["output"] for r in rows.values() if r["status"] == "succeeded"].count(
        expected["first"]
    ) == 1
    bad = rows["bad"]
    assert bad["status"] == "failed" and bad["runId"]
    assert "bad prompt" in bad["error"]["message"] and bad["error"]["task_id"] == "t1"

    again = cluster.cli("batch", chain, "--inputs", inputs, "--out", out)
    assert "0 succeeded, 1 failed, 2 skipped" in again.stderr
    assert len(out.read_text().splitlines()) == 4  # only the failed line ran again


def test_batch_refuses_a_bad_inputs_file_naming_the_line(cluster, tmp_path):
    chain = write_chain(tmp_path)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('"ok"\nnot json\n')
    out = cluster.cli("batch", chain, "--inputs", inputs)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{inputs}:2: not a JSON line" in out.stderr
    inputs.write_text('{"key": "a", "input": 1}\n{"key": "a", "input": 2}\n')
    out = cluster.cli("batch", chain, "--inputs", inputs)
    assert "key 'a' repeats line 1" in out.stderr


async def test_queued_batch_survives_a_worker_killed_mid_batch(cluster, tmp_path):
    count = 120
    chain = write_chain(tmp_path)
    texts = [f"line {i}" for i in range(count)]
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        "".join(json.dumps({"key": f"k{i}", "input": t}) + "\n" for i, t in enumerate(texts))
    )
    out = tmp_path / "out.jsonl"
    expected = await in_process_outputs(cluster, CHAIN, texts)
    workers = [cluster.start_worker("--concurrency", "6") for _ in range(3)]

    batch = subprocess.Popen(
        [str(EXE), "batch", str(chain), "--inputs", str(inputs), "--out", str(out), "--queue"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= count // 4,
                   60, "a quarter of the batch")  # fmt: skip
        os.kill(workers[1].pid, signal.SIGKILL)
        workers[1].wait(timeout=10)  # reaped: a zombie would still look alive to the lease
        killed_at = time.monotonic()
        _, stderr = batch.communicate(timeout=120)
    finally:
        if batch.poll() is None:
            batch.kill()
    assert batch.returncode == 0, stderr
    # its runs moved on at once (dead pid on this host), not after the 30 s lease
    assert time.monotonic() - killed_at < 25
    rows = results(out)
    assert len(rows) == count
    for i, text in enumerate(texts):
        row = rows[f"k{i}"]
        assert row["status"] == "succeeded", row
        assert row["output"] == expected[text]

    async with client(cluster) as (runtime, _queue):
        for row in rows.values():
            steps = [s for s in await runtime.store.get_steps(row["runId"]) if s.step is not None]
            assert [s.task_id for s in steps] == [f"t{i}" for i in range(1, STEPS + 1)]

    again = cluster.cli("batch", chain, "--inputs", inputs, "--out", out, "--queue")
    assert f"0 succeeded, 0 failed, {count} skipped" in again.stderr
    assert len(out.read_text().splitlines()) == count
