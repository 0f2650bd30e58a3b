"""Test helpers for your own chains: `FakeLLMServer` (a real scripted LLM server) and `MockTaskExecutor`."""

from __future__ import annotations

from taskengine._lazy import lazy_exports

__all__ = ["FakeLLMServer", "FakeRule", "MockTaskExecutor", "RecordedRequest"]

_EXPORTS = {
    "FakeLLMServer": "taskengine.testing.fake_llm",
    "FakeRule": "taskengine.testing.fake_llm",
    "RecordedRequest": "taskengine.testing.fake_llm",
    "MockTaskExecutor": "taskengine.testing.mock",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
