"""A chain where the model asks for tool calls, the tools run, and the model answers with them.

Real parts throughout: the FakeLLMServer (OpenAI wire format, strict tool names), a local
`@hook` function, and a remote OpenAPI hook on the loopback server with injected secrets.
"""

from __future__ import annotations

import json

from taskengine.config import RemoteHookSettings, Settings
from taskengine.datatypes import ChatHistory, DataType
from taskengine.hooks import default_local_hooks, hook
from taskengine.providers.config import ProviderConfig
from taskengine.runtime import open_runtime
from taskengine.testing.fake_llm import FakeLLMServer

from .fakeapi import SECRET_KEY, SECRET_TENANT, SECRET_TOKEN, SECRETS, FakeApi

CHAIN = {
    "id": "weather-chat",
    "tasks": [
        {
            "id": "ask",
            "handler": "model_execution",
            "execute_config": {
                "model": "fake-model",
                "provider": "fake",
                "hooks": ["te_e2e_weather", "orders"],
                "hide_tools": [
                    "slow",
                    "orders.leaky",
                    "missing",
                    "broken",
                    "plainText",
                    "getOrder",
                    "createOrder",
                ],
            },
            "transition": {
                "branches": [
                    {"operator": "equals", "when": "tool-call", "goto": "run_tools"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        },
        {
            "id": "run_tools",
            "handler": "execute_tool_calls",
            "input_var": "ask",
            "transition": {"branches": [{"operator": "default", "goto": "ask"}]},
        },
    ],
}


def answer_from_tools(request: dict) -> str:
    """The scripted model's final answer: it quotes what the tools returned."""
    results = [m["content"] for m in request["messages"] if m["role"] == "tool"]
    return "Answer using: " + " | ".join(results)


async def test_model_calls_local_and_remote_tools_then_answers(api: FakeApi) -> None:
    forecasts: list[tuple[str, int]] = []

    @hook("te_e2e_weather")
    def get_forecast(city: str, days: int = 1) -> dict:
        """Forecast for a city.

        Args:
            city: City name.
            days: Days ahead.
        """
        forecasts.append((city, days))
        return {"city": city, "sky": "clear"}

    settings = Settings(
        providers=[ProviderConfig(name="fake", base_url="http://placeholder")],
        remote_hooks=[
            RemoteHookSettings(
                name="orders",
                url=f"{api.base}/v30",
                headers={"Authorization": f"Bearer {SECRET_TOKEN}", "X-Api-Key": SECRET_KEY},
                inject_body={"tenant_id": SECRET_TENANT},
                timeout=5,
            )
        ],
    )
    try:
        async with FakeLLMServer() as llm:
            provider = settings.providers[0].model_copy(update={"base_url": llm.openai_base_url})
            settings = settings.model_copy(update={"providers": [provider]})
            llm.reply_sequence(
                [
                    {
                        "tool_calls": [
                            {
                                "name": "te_e2e_weather__get_forecast",
                                "arguments": {"city": "Oslo", "days": 2},
                            },
                            {"name": "orders__search", "arguments": {"q": "umbrella", "limit": 3}},
                            {"name": "orders__nonexistent", "arguments": {}},
                        ]
                    },
                    {"reply": answer_from_tools},
                ]
            )
            runtime = await open_runtime(settings, use_store=False)
            async with runtime:
                result = await runtime.env.exec_env(
                    CHAIN, "What should I wear in Oslo?", DataType.STRING
                )
            first = llm.requests_for("/v1/chat/completions")[0]
    finally:
        default_local_hooks().unregister("te_e2e_weather")

    assert result.status == "succeeded", result.error
    assert [unit.task_id for unit in result.state] == ["ask", "run_tools", "ask"]
    offered = sorted(t["function"]["name"] for t in first.tools or [])
    assert offered == [
        "orders__search",
        "te_e2e_weather__get_forecast",
    ]  # hide_tools applied, names mapped
    assert forecasts == [("Oslo", 2)]
    [search] = api.calls
    assert search.query == {"q": "umbrella", "limit": "3"}
    assert search.headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
    # step 2 of the run (after the model step), then the tool call id
    assert search.headers["Idempotency-Key"].startswith(f"{result.run_id}:run_tools:2:")

    assert isinstance(result.output, ChatHistory)
    final = result.output.messages[-1].content
    assert final.startswith("Answer using: ")
    assert '"sky":"clear"' in final and "umbrella" in final
    tool_messages = [m for m in result.output.messages if m.role == "tool"]
    assert (
        "unknown" in tool_messages[2].content or "no tool" in tool_messages[2].content
    )  # the model can recover

    everything = json.dumps(result.to_dict())
    for secret in SECRETS:
        assert secret not in everything
