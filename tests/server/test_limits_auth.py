"""Auth, request ids, body size, the concurrent-run limit (429), the run deadline (504), CORS, metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, make_settings, serve_asgi
from .test_execution import ASK, ROUTER, assert_error

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_token_is_required_everywhere_but_health_and_version(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    async with serve_asgi(make_settings(tmp_path, fake_llm, api_token=TOKEN)) as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/version")).json()["version"]
        for path in (
            "/supported",
            "/taskchains",
            "/runs",
            "/activity/logs",
            "/openapi.json",
            "/docs",
        ):
            response = await client.get(path)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
        bad = {"Authorization": "Bearer not-the-token"}
        assert_error(
            await client.post("/tasks", json={"input": "a=1", "chain": ROUTER}, headers=bad), 401
        )
        assert_error(await client.get("/supported", headers={"Authorization": TOKEN}), 401)
        ok = await client.post("/tasks", json={"input": "a=1", "chain": ROUTER}, headers=AUTH)
        assert ok.status_code == 200
        schema = (await client.get("/openapi.json", headers=AUTH)).json()
        assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        assert schema["paths"]["/health"]["get"]["security"] == []
        assert "/openai/{chain_id}/v1/chat/completions" in schema["paths"]
        assert (await client.get("/docs", headers=AUTH)).status_code == 200


async def test_request_id_is_echoed_or_made_and_ties_activity(api) -> None:
    response = await api.post(
        "/tasks", json={"input": "a=1", "chain": ROUTER}, headers={"X-Request-ID": "req-42"}
    )
    assert response.headers["x-request-id"] == "req-42"
    made = await api.get("/health")
    assert len(made.headers["x-request-id"]) == 32
    weird = await api.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert weird.headers["x-request-id"] != "bad id\twith spaces"
    failed = await api.get("/nowhere", headers={"X-Request-ID": "req-404"})
    assert failed.headers["x-request-id"] == "req-404"

    events = (await api.get("/activity/requests/req-42")).json()
    assert [e["operation"] for e in events] == ["exec_chain"]
    assert events[0]["subject"] == "router" and events[0]["requestID"] == "req-42"
    steps = (await api.get("/activity/requests/req-42/state")).json()
    assert [s["taskID"] for s in steps] == ["parse", "done"]
    run = (await api.get(f"/runs/{response.json()['runId']}")).json()
    assert run["requestId"] == "req-42"


async def test_body_over_the_limit_is_413(tmp_path: Path, fake_llm: FakeLLMServer) -> None:
    async with serve_asgi(make_settings(tmp_path, fake_llm, max_body_bytes=2000)) as client:
        big = {"input": "x" * 5000, "chain": ROUTER}
        assert_error(await client.post("/tasks", json=big), 413, "payload_too_large")

        async def chunks():
            for _ in range(10):
                yield b" " * 500  # no Content-Length: the streamed body is counted

        response = await client.post(
            "/tasks", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_error(response, 413)
        assert (
            await client.post("/tasks", json={"input": "a=1", "chain": ROUTER})
        ).status_code == 200


async def test_concurrency_limit_answers_429_with_retry_after(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    fake_llm.add_rule(delay=0.3)
    async with serve_asgi(make_settings(tmp_path, fake_llm, max_concurrent_runs=5)) as client:
        responses = await asyncio.gather(
            *(client.post("/tasks", json={"input": f"q{i}", "chain": ASK}) for i in range(50))
        )
        statuses = [r.status_code for r in responses]
        assert not [s for s in statuses if s >= 500], statuses
        limited = [r for r in responses if r.status_code == 429]
        assert limited and statuses.count(200) >= 5
        assert set(statuses) == {200, 429}
        for response in limited:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["code"] == "too_many_runs"
        # slots are given back: later runs are admitted again
        assert (
            await client.post("/tasks", json={"input": "again", "chain": ASK})
        ).status_code == 200
        assert (await client.get("/health")).json()["runsInFlight"] == 0


async def test_run_past_the_deadline_is_504(tmp_path: Path, fake_llm: FakeLLMServer) -> None:
    fake_llm.add_rule("slow", delay=3.0)
    settings = make_settings(tmp_path, fake_llm, limits={"run_timeout": 0.3})
    async with serve_asgi(settings) as client:
        response = await client.post("/tasks", json={"input": "slow", "chain": ASK})
        error = assert_error(response, 504, "timeout")
        assert "0.3" in error["message"] and error["run_id"]
        run = (await client.get(f"/runs/{error['run_id']}")).json()
        assert run["status"] == "interrupted"


async def test_cors_preflight_is_answered_without_a_token(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    settings = make_settings(
        tmp_path, fake_llm, api_token=TOKEN, cors_origins=["https://app.example"]
    )
    async with serve_asgi(settings) as client:
        response = await client.options("/tasks", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        })  # fmt: skip
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        denied = await client.get("/runs", headers={"Origin": "https://app.example"})
        assert (
            denied.status_code == 401
            and denied.headers["access-control-allow-origin"] == "https://app.example"
        )


async def test_metrics_endpoint_serves_prometheus_text(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    async with serve_asgi(make_settings(tmp_path, fake_llm, metrics=True)) as client:
        assert (await client.post("/tasks", json={"input": "hi", "chain": ASK})).status_code == 200
        response = await client.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/plain"
        )
        assert 'taskengine_runs_finished_total{chain="ask",status="succeeded"} 1.0' in response.text
        assert "taskengine_llm_latency_seconds" in response.text


async def test_token_from_the_environment(tmp_path: Path) -> None:
    import httpx

    from taskengine.server import create_app

    environ = {"TASKENGINE_API_TOKEN": "env-token", "TASKENGINE_DB": f"sqlite:///{tmp_path / 'env.db'}",
               "TASKENGINE_KV": "memory://"}  # fmt: skip
    app = create_app(environ=environ)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://te") as client:
            assert_error(await client.get("/runs"), 401)
            ok = await client.get("/runs", headers={"Authorization": "Bearer env-token"})
            assert ok.status_code == 200 and ok.json() == {"items": [], "nextCursor": None}
