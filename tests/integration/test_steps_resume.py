"""Kill a step-style run with SIGKILL mid-step, then resume it from its SQLite checkpoints."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from taskengine.store import open_store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

CHILD = '''
"""A three-step ingest task; with STEPS_MARKER set, `parse` announces itself and then hangs."""

import asyncio
import os
import sys
from pathlib import Path

from taskengine.steps import TaskExecutor


class Ingest(TaskExecutor):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.task_steps = [
            {"id": "fetch", "name": "Fetch", "required_info": ["url"]},
            {"id": "parse", "name": "Parse", "required_info": ["raw"]},
            {"id": "summarise", "name": "Summarise", "required_info": ["words"]},
        ]

    def _ran(self, step):
        with open(os.environ["STEPS_LOG"], "a") as log:
            log.write(step + "\\n")

    async def handle_fetch(self, step_input):
        self._ran("fetch")
        return {"raw": "contents of " + step_input["url"]}

    async def handle_parse(self, step_input):
        self._ran("parse")
        marker = os.environ.get("STEPS_MARKER")
        if marker:
            Path(marker).write_text("parse started")
            await asyncio.sleep(60)  # killed here
        return {"words": step_input["raw"].split()}

    async def handle_summarise(self, step_input):
        self._ran("summarise")
        return {"count": len(step_input["words"])}


if __name__ == "__main__":
    db, run_id = sys.argv[1], sys.argv[2]
    executor = Ingest(store="sqlite:///" + db, lease_ttl=1.0)
    asyncio.run(executor.execute({"url": "http://example.test/a"}, run_id=run_id))
'''


def _load_ingest(script: Path):
    spec = importlib.util.spec_from_file_location("steps_resume_child", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Ingest


async def _wait_until_interrupted(store, run_id: str, deadline_s: float) -> None:
    """Poll until the dead child's lease has expired (reads then report the run as interrupted)."""
    deadline = time.monotonic() + deadline_s
    while (await store.get_run(run_id)).status != "interrupted":
        assert time.monotonic() < deadline, f"run {run_id} still looks alive after {deadline_s} s"
        await asyncio.sleep(0.05)


def _wait_for(path: Path, proc: subprocess.Popen, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not path.exists():
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(
                f"the child exited with {proc.returncode} before the marker appeared:\n{err}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"no marker after {deadline_s} s")
        time.sleep(0.02)


async def test_sigkilled_step_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    script = tmp_path / "ingest.py"
    script.write_text(CHILD)
    db = tmp_path / "runs.db"
    marker = tmp_path / "parse.started"
    child_log = tmp_path / "child.log"
    run_id = "run-killed-mid-parse"
    env = {**os.environ, "STEPS_MARKER": str(marker), "STEPS_LOG": str(child_log)}

    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), run_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(marker, proc, deadline_s=30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    store = await open_store(f"sqlite:///{db}")
    try:
        before = await store.get_steps(run_id)
        assert [(s.task_id, s.status) for s in before] == [("fetch", "succeeded")]
        await _wait_until_interrupted(store, run_id, deadline_s=10)

        ingest = _load_ingest(script)
        monkeypatch.delenv("STEPS_MARKER", raising=False)
        resumed_log = tmp_path / "resumed.log"
        monkeypatch.setenv("STEPS_LOG", str(resumed_log))
        result = await ingest(store=store).resume(run_id)

        monkeypatch.setenv("STEPS_LOG", str(tmp_path / "fresh.log"))
        fresh = await ingest(store=store).execute({"url": "http://example.test/a"})

        after = await store.get_steps(run_id)
        run = await store.get_run(run_id)
    finally:
        await store.aclose()

    assert (
        result
        == fresh
        == {
            "url": "http://example.test/a",
            "raw": "contents of http://example.test/a",
            "words": ["contents", "of", "http://example.test/a"],
            "count": 3,
        }
    )
    assert result.steps == fresh.steps and list(result.steps) == ["fetch", "parse", "summarise"]
    assert result.run_id == run_id and run.status == "succeeded"
    succeeded = Counter(s.task_id for s in after if s.status == "succeeded")
    assert succeeded == {"fetch": 1, "parse": 1, "summarise": 1}
    assert child_log.read_text().split() == ["fetch", "parse"]
    assert resumed_log.read_text().split() == ["parse", "summarise"]  # fetch was not run again
