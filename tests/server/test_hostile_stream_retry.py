"""Issue 14, item 5: a retried streaming step never sends text from its failed attempt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, LiveServer, make_settings

RETRIED = {
    "id": "retried",
    "tasks": [{"id": "reply", "handler": "model_execution", "retry_on_failure": 2}],
}


def test_client_receives_exactly_the_runs_output_after_a_retry(
    tmp_path: Path, fake_llm: FakeLLMServer, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server(make_settings(tmp_path, fake_llm, api_token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{server.url}/taskchains", json=RETRIED, headers=auth).status_code == 201
    fake_llm.add_rule("answer", reply="PARTIAL-FROM-FAILED-ATTEMPT and more", drop_after_chunks=2,
                      times=1)  # fmt: skip
    fake_llm.add_rule("answer", reply="the final answer")
    with openai.OpenAI(
        base_url=f"{server.url}/openai/retried/v1", api_key=TOKEN, max_retries=0
    ) as sdk:
        stream = sdk.chat.completions.create(
            model="retried", messages=[{"role": "user", "content": "answer me"}], stream=True
        )
        with stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    runs = httpx.get(f"{server.url}/runs", params={"chain_id": "retried"}, headers=auth).json()
    assert text == "the final answer"
    assert "PARTIAL" not in text
    assert runs  # the run is recorded
