"""A client written for the Go runtime's HTTP API works unchanged against `taskengine serve`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, LiveServer, make_settings
from .test_execution import ROUTER, assert_error

SECRET = "Bearer sk-go-client-SECRET-4242"


async def test_get_taskchain_is_the_definition_and_round_trips(api: httpx.AsyncClient) -> None:
    chain = {**ROUTER, "id": "gochain", "description": "from a Go client"}
    created = await api.post("/taskchains", json=chain)
    assert created.status_code == 201, created.text
    # POST answers with the chain's own keys too, as the Go API answers with the chain
    assert created.json()["tasks"] == created.json()["chain"]["tasks"]
    got = await api.get("/taskchains/gochain")
    assert got.status_code == 200
    definition = got.json()
    assert definition["id"] == "gochain" and definition["description"] == "from a Go client"
    assert [t["id"] for t in definition["tasks"]] == ["parse", "done"]
    assert got.headers["x-created-at"] and got.headers["x-updated-at"]
    # What a Go client read, it can send back as it is.
    put = await api.put("/taskchains/gochain", json={**definition, "description": "v2"})
    assert put.status_code == 200, put.text
    assert (await api.get("/taskchains/gochain")).json()["description"] == "v2"


async def test_an_invalid_chain_is_400_and_an_id_mismatch_422(api: httpx.AsyncClient) -> None:
    bad = {"id": "bad", "tasks": [{"id": "a", "handler": "noop",
                                   "transition": {"branches": [{"operator": "default", "goto": "nowhere"}]}}]}  # fmt: skip
    error = assert_error(await api.post("/taskchains", json=bad), 400, "invalid_chain")
    assert any(p["path"].endswith("goto") for p in error["problems"])
    assert (await api.post("/taskchains", json={**ROUTER, "id": "good"})).status_code == 201
    assert_error(
        await api.put("/taskchains/good", json={**bad, "id": "good"}), 400, "invalid_chain"
    )
    assert_error(await api.put("/taskchains/good", json={**ROUTER, "id": "other"}), 422)


async def test_remote_hook_registered_with_the_go_body_runs_in_a_chain(
    api: httpx.AsyncClient, greeter: dict[str, Any]
) -> None:
    go_body = {
        "name": "greeter",
        "endpointUrl": greeter["url"],
        "timeoutMs": 2500,
        "headers": {"Authorization": SECRET},
        "properties": {"name": "tenant", "value": "t-1", "in": "body"},
    }
    created = await api.post("/hooks/remote", json=go_body)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["url"] == hook["endpointUrl"] == greeter["url"]
    assert hook["timeout"] == 2.5 and hook["timeoutMs"] == 2500
    assert hook["headers"] == {"Authorization": "***"} and hook["inject_body"] == {"tenant": "***"}

    # Go's transition values on the remote-hook path: "ok", or the rendered output_template.
    chain = {"id": "greet", "tasks": [
        {"id": "hi", "handler": "hook",
         "hook": {"name": "greeter", "tool_name": "greet", "args": {"name": "{{.input}}"}},
         "transition": {"branches": [{"operator": "equals", "when": "ok", "goto": "shaped"},
                                     {"operator": "default", "goto": "end"}]}},
        {"id": "shaped", "handler": "hook",
         "hook": {"name": "greeter", "tool_name": "greet", "args": {"name": "{{.input}}"}},
         "output_template": "{{ greeting }}",
         "transition": {"branches": [{"operator": "equals", "when": "hello Ann", "goto": "end"}]}},
    ]}  # fmt: skip
    run = await api.post("/tasks", json={"input": "Ann", "chain": chain})
    assert run.status_code == 200, run.text
    body = run.json()
    assert [s["transition"] for s in body["state"]] == ["ok", "hello Ann"]
    assert body["output"] == "hello Ann"
    assert greeter["headers"][-1]["Authorization"] == SECRET
    step = body["state"][0]
    assert isinstance(step["duration"], int) and step["error"] == {"error": ""}

    # PUT takes the Go body too.
    updated = await api.put(
        f"/hooks/remote/{hook['id']}", json={**go_body, "timeoutMs": 4000, "headers": {"Authorization": "***"}}
    )  # fmt: skip
    assert updated.status_code == 200 and updated.json()["timeoutMs"] == 4000


CHAT = {
    "id": "assistant",
    "tasks": [{"id": "reply", "handler": "model_execution", "execute_config": {"model": "fake-model"},
               "transition": {"branches": [{"operator": "default", "goto": "end"}]}},
              {"id": "format", "handler": "convert_to_openai_chat_response"}],
}  # fmt: skip


def test_openai_endpoint_echoes_the_requested_model(
    tmp_path: Path, fake_llm: FakeLLMServer, live_server: Callable[..., LiveServer]
) -> None:
    live = live_server(make_settings(tmp_path, fake_llm, api_token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{live.url}/taskchains", json=CHAT, headers=auth).status_code == 201
    fake_llm.add_rule("hi", reply="hello there")
    with openai.OpenAI(
        base_url=f"{live.url}/openai/assistant/v1", api_key=TOKEN, max_retries=0
    ) as client:
        plain = client.chat.completions.create(
            model="my-go-client-model", messages=[{"role": "user", "content": "hi"}]
        )
        assert plain.model == "my-go-client-model"
        assert plain.choices[0].message.content == "hello there"
        chunks = list(
            client.chat.completions.create(
                model="my-go-client-model",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
        )
        assert chunks and all(c.model == "my-go-client-model" for c in chunks)
        assert (
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
        )
        unnamed = httpx.post(
            f"{live.url}/openai/assistant/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers=auth,
        )
        assert unnamed.status_code == 200 and unnamed.json()["model"] == "assistant"
