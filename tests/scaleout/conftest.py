"""Scale-out fixtures: a PostgreSQL database of this session's own, a fake model, real workers.

The database `test_queue_<random>` is created for the session and dropped after it, so these
tests never meet another suite's tables. Workers are real `taskengine worker` processes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskengine.testing import FakeLLMServer

PG_DSN = os.environ.get("TASKENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
EXE = Path(sys.executable).with_name("taskengine")
STEPS = 5
#: a linear chain of five LLM steps, each prompting with the previous output
CHAIN: dict[str, Any] = {
    "id": "five_steps",
    "tasks": [
        {
            "id": f"t{i}",
            "handler": "raw_string",
            "prompt_template": f"step {i}: {{{{ .previous_output }}}}",
            **(
                {"transition": {"branches": [{"operator": "default", "goto": f"t{i + 1}"}]}}
                if i < STEPS
                else {}
            ),
        }
        for i in range(1, STEPS + 1)
    ],
}


def digest_reply(request: dict[str, Any]) -> str:
    """A reply that is a pure function of the prompt, so outputs can be compared run for run."""
    text = FakeLLMServer.echo(request)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def queue_db() -> Iterator[str]:
    """URL of a fresh database for this session (dropped at the end)."""
    import psycopg

    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {PG_DSN} ({exc}); set TASKENGINE_TEST_PG_DSN"
        if os.environ.get("TASKENGINE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"TASKENGINE_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    name = f"test_queue_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(queue_db: str) -> str:
    """The session database, with this test's own schema (each test starts from empty tables)."""
    return f"{queue_db}?schema=q_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLMServer]:
    """A fake model answering every prompt after 50 ms with a digest of the prompt."""
    with FakeLLMServer(default_reply=digest_reply) as srv:
        srv.add_rule(regex=r"explode", status=400, body={"error": {"message": "bad prompt"}})
        srv.add_rule(regex=r"flaky", status=503, body={"error": {"message": "overloaded"}})
        # fails twice, then answers: a run the queue's retries carry through
        srv.add_rule(regex=r"transient", status=503, times=2)
        srv.add_rule(regex=r"watched", status=503, times=2)  # the same, for a second test
        srv.add_rule(delay=0.05, reply=digest_reply)
        yield srv


def write_config(path: Path, llm: FakeLLMServer, **queue: Any) -> Path:
    import json

    settings = {
        "providers": [
            {"name": "fake", "type": "openai_compatible", "base_url": llm.openai_base_url,
             "timeout": 10}
        ],
        "default_provider": "fake",
        "default_model": "fake-model",
        "retry": {"base": 0.01, "max": 0.05},
        "queue": {"heartbeat": 0.5, "stalled_after": 2, "stall_check": 1, "retry_base": 0.2,
                  "max_attempts": 3,
                  **queue},
        "logging": {"level": "WARNING"},
    }  # fmt: skip
    path.write_text(json.dumps(settings))
    return path


class Cluster:
    """Worker processes over one database and config; stopped (killed if need be) at the end."""

    def __init__(self, db_url: str, config: Path, logs: Path) -> None:
        self.env = {**os.environ, "TASKENGINE_DB": db_url, "TASKENGINE_CONFIG": str(config)}
        self.logs = logs
        self.workers: list[subprocess.Popen] = []

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(EXE), *map(str, args)], env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def start_worker(self, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"worker{len(self.workers)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(EXE), "worker", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.workers.append(proc)
        return proc

    def log_of(self, index: int) -> str:
        return (self.logs / f"worker{index}.log").read_text()

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def cluster(db_url: str, fake_llm: FakeLLMServer, tmp_path: Path) -> Iterator[Cluster]:
    config = write_config(tmp_path / "taskengine.json", fake_llm)
    group = Cluster(db_url, config, tmp_path)
    try:
        yield group
    finally:
        group.stop()
