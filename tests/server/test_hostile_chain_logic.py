"""Issue 14, item 6: a run stopped by its chain's own logic is a 422 with run id and partial state."""

from __future__ import annotations

import pytest


def _chain(task: dict) -> dict:
    return {"id": "logic", "max_steps": 5, "tasks": [
        {"id": "first", "handler": "noop",
         "transition": {"branches": [{"operator": "default", "goto": "t"}]}},
        {"id": "t", **task}]}  # fmt: skip


@pytest.mark.parametrize(
    ("task", "code"),
    [
        ({"handler": "raise_error", "prompt_template": "boom {{ input }}",
          "transition": {"branches": [{"operator": "default", "goto": "end"}]}}, "raised"),
        ({"handler": "noop", "transition": {"branches": [{"operator": "default", "goto": "t"}]}},
         "max_steps"),
        ({"handler": "noop",
          "transition": {"branches": [{"operator": "equals", "when": "zzz", "goto": "end"}]}},
         "no_branch"),
    ],
)  # fmt: skip
async def test_chain_logic_failure_is_422_with_run_id_and_partial_state(
    api, task: dict, code: str
) -> None:
    response = await api.post("/tasks", json={"input": "x", "chain": _chain(task)})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["runId"] == body["error"]["run_id"]
    assert body["status"] == "failed"
    assert body["state"][0]["taskID"] == "first"
    stored = await api.get(f"/runs/{body['runId']}")
    assert stored.status_code == 200
    assert stored.json()["status"] == "failed"
