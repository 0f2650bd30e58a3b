"""Fixtures for provider tests: a real FakeLLMServer and clients pointed at it."""

from __future__ import annotations

import socket

import pytest

from taskengine.testing.fake_llm import FakeLLMServer


@pytest.fixture
def fake():
    with FakeLLMServer(default_reply="hello from fake", models=["m1", "m2", "embed-1"]) as srv:
        yield srv


@pytest.fixture
def fake2():
    with FakeLLMServer(default_reply="hello from second", models=["m1", "m2"]) as srv:
        yield srv


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
