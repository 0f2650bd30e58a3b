"""Issue 14, item 3: deep nesting, lone surrogates and huge values are 4xx errors naming the field."""

from __future__ import annotations

import json

import pytest

from taskengine.chain import load_chain
from taskengine.errors import ChainLoadError

NOOP = {"id": "c", "tasks": [{"id": "t", "handler": "noop",
        "transition": {"branches": [{"operator": "default", "goto": "end"}]}}]}  # fmt: skip


def _with_task(**fields) -> dict:
    return {**NOOP, "tasks": [{**NOOP["tasks"][0], **fields}]}


async def _post(api, raw: bytes):
    return await api.post("/tasks", content=raw, headers={"content-type": "application/json"})


async def test_deeply_nested_request_body_is_400(api) -> None:
    response = await _post(api, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "body"


async def test_deep_yaml_flow_mapping_in_a_chain_is_400(api) -> None:
    text = "id: c\ntasks: " + "{a: " * 5000 + "1" + "}" * 5000
    response = await api.post("/tasks", json={"input": "x", "chain": text})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "chain"


async def test_deep_input_is_400_naming_input(api) -> None:
    deep: list = []
    for _ in range(200):
        deep = [deep]
    response = await api.post("/tasks", json={"input": deep, "inputType": "json", "chain": NOOP})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "input"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "a\ud800b", "chain": NOOP}, "input"),
        ({"input": "x", "chain": {**NOOP, "id": "c\ud800"}}, "chain.id"),
        ({"input": "x", "chain": _with_task(prompt_template="hi \ud800 {{ input }}")},
         "chain.tasks[0].prompt_template"),
    ],
)  # fmt: skip
async def test_lone_surrogates_are_400_naming_the_field(api, body: dict, field: str) -> None:
    response = await _post(api, json.dumps(body).encode())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x", "chain": _with_task(handler="z" * 1_000_000)},
        {"input": "x", "chain": _with_task(transition={"branches": [
            {"operator": "default", "goto": "z" * 1_000_000}]})},
        {"input": "x", "inputType": "z" * 1_000_000, "chain": NOOP},
        {"input": "x", "chainId": "z" * 1_000_000},
        {"input": "x", "chain": _with_task(timeout="z" * 1_000_000)},
    ],
)  # fmt: skip
async def test_errors_quote_at_most_a_few_hundred_characters(api, body: dict) -> None:
    response = await api.post("/tasks", json=body)
    assert 400 <= response.status_code < 500
    assert len(response.content) < 3000, response.text[:300]


def test_load_chain_of_a_long_string_is_a_load_error_not_oserror() -> None:
    with pytest.raises(ChainLoadError):
        load_chain("a" * 5000)


def test_deeply_nested_chain_file_is_a_load_error(tmp_path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(NOOP)[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(ChainLoadError, match="deep"):
        load_chain(path)
    yaml_path = tmp_path / "deep.yaml"
    yaml_path.write_text("id: c\ntasks: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ChainLoadError, match="deep"):
        load_chain(yaml_path)


async def test_chain_validation_runs_off_the_event_loop(api, monkeypatch) -> None:
    import threading

    from taskengine.server.routes import tasks

    threads: list[int] = []
    real = tasks.chain_from_value

    def spy(value, **kwargs):
        threads.append(threading.get_ident())
        return real(value, **kwargs)

    monkeypatch.setattr(tasks, "chain_from_value", spy)
    response = await api.post("/tasks", json={"input": "x", "chain": NOOP})
    assert response.status_code == 200
    assert threads and threads[0] != threading.get_ident()  # not the loop's thread


@pytest.mark.parametrize("input_type", ["json", "vector"])
async def test_deep_json_text_input_is_400(api, input_type: str) -> None:
    text = "[" * 100_000 + "]" * 100_000
    response = await api.post(
        "/tasks", json={"input": text, "inputType": input_type, "chain": NOOP}
    )
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["field"] == "input"
    assert len(response.content) < 3000


CHAT = {"id": "chat", "tasks": [{"id": "reply", "handler": "model_execution"}]}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/hooks/remote", {"name": "h", "url": "http://127.0.0.1:1", "inject_body": {"a": "\ud800"}},
         "body.inject_body.a"),
        ("/openai/chat/v1/chat/completions",
         {"model": "chat", "messages": [{"role": "user", "content": "hi \ud800"}]},
         "body.messages[0].content"),
        ("/openai/chat/v1/chat/completions",
         {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "\udc00"}]},
         "body.messages[0].content"),
        ("/execute", {"prompt": "hi \ud800"}, "body.prompt"),
        ("/embed", {"text": "hi \ud800"}, "body.text"),
        ("/tasks", {"input": "x", "chainId": "c\ud800"}, "body.chainId"),
    ],
)  # fmt: skip
async def test_lone_surrogates_on_every_route_are_400(
    api, path: str, body: dict, field: str
) -> None:
    assert (await api.post("/taskchains", json=CHAT)).status_code == 201
    response = await _post_to(api, path, json.dumps(body).encode())
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["field"] == field


async def _post_to(api, path: str, raw: bytes):
    return await api.post(path, content=raw, headers={"content-type": "application/json"})
