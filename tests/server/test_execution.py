"""POST /tasks, /execute, /embed and GET /supported against the app, with a real fake LLM."""

from __future__ import annotations

from pathlib import Path

import httpx

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import make_settings, serve_asgi

ROUTER = {
    "id": "router",
    "tasks": [
        {"id": "parse", "handler": "parse_key_value",
         "transition": {"branches": [{"operator": "default", "goto": "done"}]}},
        {"id": "done", "handler": "noop"},
    ],
}  # fmt: skip
ASK = {
    "id": "ask",
    "tasks": [{"id": "answer", "handler": "raw_string", "prompt_template": "Q: {{.input}}"}],
}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "code"} <= set(error)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


async def test_inline_chain_runs_and_returns_output_state_and_run_id(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/tasks", json={"input": "team=billing, level=2", "inputType": "string",
                                               "chain": ROUTER})  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert body["output"] == {"team": "billing", "level": 2}  # typed, as Go parses it
    assert body["outputType"] == "json"
    assert [s["taskID"] for s in body["state"]] == ["parse", "done"]
    assert body["status"] == "succeeded" and body["runId"]
    assert response.headers["x-request-id"]


async def test_chain_as_yaml_text_and_llm_task(
    api: httpx.AsyncClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule("capital", reply="Paris")
    yaml_chain = "id: ask\ntasks:\n  - id: answer\n    handler: raw_string\n    prompt_template: 'Q: {{.input}}'\n"
    response = await api.post("/tasks", json={"input": "capital of France?", "chain": yaml_chain})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "Paris"
    assert fake_llm.last_request().messages[-1]["content"] == "Q: capital of France?"


async def test_input_that_cannot_convert_is_400_naming_the_type(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/tasks", json={"input": "twelve", "inputType": "int", "chain": ROUTER}
    )
    error = assert_error(response, 400, "invalid_input")
    assert "int" in error["message"] and error["field"] == "input"
    error = assert_error(
        await api.post("/tasks", json={"input": "x", "inputType": "nope", "chain": ROUTER}), 400
    )
    assert "unknown data type" in error["message"]


async def test_chain_that_fails_lint_is_422_with_field_paths(api: httpx.AsyncClient) -> None:
    bad = {"id": "bad", "tasks": [{"id": "a", "handler": "condition_key", "prompt_templte": "x"}]}
    error = assert_error(
        await api.post("/tasks", json={"input": "x", "chain": bad}), 422, "invalid_chain"
    )
    paths = {(p["task_id"], p["path"]) for p in error["problems"]}
    assert any(task == "a" and "prompt_templte" in (path or "") for task, path in paths)


async def test_malformed_chain_text_and_missing_chain_are_400(api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/tasks", json={"input": "x", "chain": "id: [unclosed"}), 400)
    assert_error(await api.post("/tasks", json={"input": "x"}), 400)
    assert_error(await api.post("/tasks", json={"input": "x", "chain": ["not", "a", "chain"]}), 422)


async def test_failing_run_reports_run_and_task(api: httpx.AsyncClient) -> None:
    chain = {"id": "boom", "tasks": [{"id": "fail", "handler": "raise_error"}]}
    response = await api.post("/tasks", json={"input": "broken on purpose", "chain": chain})
    assert response.status_code == 422  # the chain's own logic, not a server fault
    error = response.json()["error"]
    assert error["type"] == "RaisedError" and error["task_id"] == "fail" and error["run_id"]


async def test_llm_backend_failure_is_502_not_500(
    api: httpx.AsyncClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule("explode", status=500)
    error = assert_error(await api.post("/tasks", json={"input": "explode", "chain": ASK}), 502)
    assert error["type"] == "ProviderUnavailableError"


async def test_execute_prompts_the_default_model(
    api: httpx.AsyncClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule("ping", reply="pong")
    response = await api.post("/execute", json={"prompt": "ping"})
    assert response.status_code == 200
    body = response.json()
    assert body["response"] == "pong" and body["id"]
    assert body["model"] == "fake-model"
    response = await api.post("/execute", json={"prompt": "ping", "model": "other-model"})
    assert response.json()["model"] == "other-model"
    assert fake_llm.last_request().model == "other-model"


async def test_execute_without_prompt_or_with_broken_json_is_400(api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/execute", json={}), 400)
    assert_error(await api.post("/execute"), 400)
    response = await api.post(
        "/execute", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 400)


async def test_embed_returns_the_vector(api: httpx.AsyncClient, fake_llm: FakeLLMServer) -> None:
    response = await api.post("/embed", json={"text": "hello"})
    assert response.status_code == 200
    assert response.json()["vector"] == fake_llm.embedding_for("hello")
    assert_error(await api.post("/embed", json={}), 400)


async def test_supported_lists_handlers_operators_and_types(api: httpx.AsyncClient) -> None:
    body = (await api.get("/supported")).json()
    assert {"noop", "model_execution", "hook"} <= set(body["handlers"])
    assert {"equals", "in_range", "default"} <= set(body["operators"])
    assert "openai_chat" in body["dataTypes"] and "echo" in body["hooks"]


async def test_unknown_route_and_wrong_method_use_the_error_shape(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/no/such/route"), 404, "not_found")
    assert_error(await api.get("/tasks"), 405)
    error = assert_error(await api.get("/runs", params={"limit": "many"}), 422, "invalid_request")
    assert error["problems"][0]["path"] == "limit"


async def test_no_provider_configured_is_a_gateway_error(tmp_path: Path) -> None:
    async with serve_asgi(make_settings(tmp_path, None)) as client:
        response = await client.post("/tasks", json={"input": "x", "chain": ASK})
    assert_error(response, 502, "no_provider")


async def test_unknown_hook_is_a_422_before_any_step(api: httpx.AsyncClient) -> None:
    chain = {"id": "h", "tasks": [{"id": "a", "handler": "hook", "hook": {"name": "nosuch"}}]}
    response = await api.post("/tasks", json={"input": "x", "chain": chain})
    error = assert_error(response, 422, "unknown_hook")
    assert "unknown hook 'nosuch'" in error["message"]
