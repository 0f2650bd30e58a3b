"""Issue 14, item 1: a runaway run must not starve the server, and its deadline always fires."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path

import httpx

from .conftest import make_settings

SELF_LOOP = {
    "id": "spin",
    "max_steps": 1_000_000_000,
    "tasks": [
        {"id": "again", "handler": "noop",
         "transition": {"branches": [{"operator": "default", "goto": "again"}]}},
    ],
}  # fmt: skip


def _health_latencies(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/health")
            out.append(time.perf_counter() - started)
            time.sleep(0.01)


def test_runaway_self_loop_keeps_health_fast_and_times_out(tmp_path: Path, live_server) -> None:
    settings = make_settings(
        tmp_path, None, limits={"run_timeout": 2, "max_steps_cap": 100_000_000}
    )
    server = live_server(settings)
    latencies: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_health_latencies, args=(server.url, stop, latencies))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        watcher.start()
        started = time.monotonic()
        try:
            response = client.post("/tasks", json={"input": "x", "chain": SELF_LOOP})
        finally:
            elapsed = time.monotonic() - started
            stop.set()
            watcher.join()
    assert response.status_code == 504, response.text
    assert response.json()["error"]["field"] == "limits.run_timeout"
    assert elapsed < 5, f"run_timeout=2s fired after {elapsed:.1f}s"
    assert len(latencies) >= 20, f"only {len(latencies)} /health answers during the run"
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 0.1, f"/health p99 {p99 * 1000:.0f} ms while a run loops"


def test_server_caps_max_steps_per_request(tmp_path: Path, live_server) -> None:
    server = live_server(make_settings(tmp_path, None, limits={"max_steps_cap": 50}))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/tasks", json={"input": "x", "chain": SELF_LOOP})
    body = response.json()["error"]
    assert body["code"] == "max_steps"
    assert "limits.max_steps_cap" in body["message"]
    assert body["field"] == "max_steps"


def test_sigterm_stops_a_server_with_a_runaway_run_within_the_grace(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "none.yaml").write_text("{}\n")
    env = {
        **os.environ,
        "TASKENGINE_DB": f"sqlite:///{tmp_path / 'runs.db'}",
        "TASKENGINE_KV": "memory://",
        "TASKENGINE_CONFIG": str(tmp_path / "none.yaml"),
        "TASKENGINE_SERVER__SHUTDOWN_GRACE": "1",
        "TASKENGINE_LIMITS__MAX_STEPS_CAP": "1000000000",
    }
    exe = Path(sys.executable).with_name("taskengine")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        runaway = threading.Thread(
            target=lambda: _post_quietly(f"{url}/tasks", {"input": "x", "chain": SELF_LOOP}),
            daemon=True,
        )
        runaway.start()
        time.sleep(0.5)  # the run is looping now
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - signalled < 6, "shutdown overran the 1 s grace by far"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _post_quietly(url: str, body: dict) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(url, json=body, timeout=30)
