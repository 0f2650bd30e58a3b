"""Fixtures for hook tests: the loopback OpenAPI server and a URL nobody listens on."""

from __future__ import annotations

import socket

import pytest

from .fakeapi import FakeApi


@pytest.fixture
async def api():
    server = FakeApi()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v30"
