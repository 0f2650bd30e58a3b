"""Issue 14, item 7: a provider's 429 `Retry-After` is honoured before a retry or a fallback."""

from __future__ import annotations

import time

from taskengine.providers.base import parse_retry_after
from taskengine.testing.fake_llm import FakeLLMServer


def _chain(task: dict) -> dict:
    return {"id": "pressed", "tasks": [{"id": "ask", "handler": "raw_string",
            "prompt_template": "busy {{ input }}", **task}]}  # fmt: skip


async def test_retry_waits_for_retry_after(api, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule("busy", status=429, body={"error": {"message": "slow down"}},
                      headers={"Retry-After": "1"}, times=1)  # fmt: skip
    fake_llm.add_rule("busy", reply="done")
    started = time.monotonic()
    response = await api.post("/tasks", json={"input": "x", "chain": _chain(
        {"retry_on_failure": 3})})  # fmt: skip
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "done"
    assert elapsed >= 0.9, f"retried after {elapsed:.2f} s despite Retry-After: 1"


async def test_retry_after_is_capped_by_the_task_timeout(api, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule("busy", status=429, headers={"Retry-After": "30"}, times=1)
    fake_llm.add_rule("busy", reply="done")
    started = time.monotonic()
    response = await api.post("/tasks", json={"input": "x", "chain": _chain(
        {"retry_on_failure": 1, "timeout": "1s"})})  # fmt: skip
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert 0.9 <= elapsed < 5


async def test_fallback_to_the_same_provider_waits(api, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule("busy", model="fake-model", status=429, headers={"Retry-After": "1"})
    fake_llm.add_rule("busy", model="other-model", reply="from the other model")
    started = time.monotonic()
    response = await api.post("/tasks", json={"input": "x", "chain": _chain(
        {"execute_config": {"models": ["fake-model", "other-model"]}})})  # fmt: skip
    elapsed = time.monotonic() - started
    assert response.json()["output"] == "from the other model", response.text
    assert elapsed >= 0.9


def test_retry_after_values() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after("999999") == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after(None) is None
