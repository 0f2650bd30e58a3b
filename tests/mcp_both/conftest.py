"""Fixtures for MCP tests: the SDK (required when TASKENGINE_REQUIRE_SERVICES=1) and real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DEMO_SERVER = str(HERE / "demo_server.py")
#: a secret the demo server appends to its answers (DEMO_TOKEN): taskengine must mask it
SUFFIX_SECRET = "-suffix-s3cr3t-value"


def _need_mcp() -> None:
    try:
        from mcp.server.mcpserver import MCPServer  # noqa: F401
    except ImportError as exc:
        message = f"the MCP SDK 2.x is not installed ({exc}): pip install -e '.[mcp]'"
        if os.environ.get("TASKENGINE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"TASKENGINE_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _mcp_sdk() -> None:
    _need_mcp()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, deadline_s: float = 30.0) -> None:
    """Poll until something accepts connections on `port` (or the process died)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {deadline_s}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def demo_http_url():
    """The demo server over streamable HTTP, in its own process (DEMO_TOKEN = SUFFIX_SECRET)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, DEMO_SERVER, "--http", str(port)],
        env={**os.environ, "DEMO_TOKEN": SUFFIX_SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc)
