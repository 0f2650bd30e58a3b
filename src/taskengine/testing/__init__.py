"""Test helpers for your own chains: `FakeLLMServer` (a real scripted LLM server) and `MockTaskExecutor`."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FakeLLMServer", "FakeRule", "MockTaskExecutor", "RecordedRequest"]

_EXPORTS = {
    "FakeLLMServer": "taskengine.testing.fake_llm",
    "FakeRule": "taskengine.testing.fake_llm",
    "RecordedRequest": "taskengine.testing.fake_llm",
    "MockTaskExecutor": "taskengine.testing.mock",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'taskengine.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
