"""The MCP examples run as documented: the agent over the weather MCP server, and the client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from taskengine.chain import load_chain
from taskengine.config import load_settings
from taskengine.datatypes import DataType
from taskengine.providers.config import ProviderConfig
from taskengine.runtime import open_runtime
from taskengine.testing.fake_llm import FakeLLMServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


async def test_the_mcp_agent_example_calls_the_weather_server(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the example's command path is relative to the repository root
    settings = load_settings(EXAMPLES / "mcp_taskengine.yaml", environ={})
    [weather] = settings.mcp_servers
    weather = weather.model_copy(update={"command": [sys.executable, *weather.command[1:]]})
    async with FakeLLMServer() as llm:
        llm.reply_sequence(
            [
                {"tool_calls": [{"name": "weather__get_forecast", "arguments": {"city": "Oslo"}}]},
                {"reply": lambda req: "Pack boots: " + req["messages"][-1]["content"]},
            ]
        )
        settings = settings.model_copy(
            update={
                "mcp_servers": [weather],
                "providers": [ProviderConfig(name="fake", base_url=llm.openai_base_url)],
                "default_provider": "fake",
                "default_model": "fake-model",
            }
        )
        chain = load_chain(EXAMPLES / "mcp_agent.yaml")
        async with await open_runtime(settings, use_store=False) as runtime:
            result = await runtime.env.exec_env(chain, "Umbrella for Oslo?", DataType.STRING)
        offered = llm.requests_for("/v1/chat/completions")[0].tools or []
    assert result.status == "succeeded", result.error
    assert [t["function"]["name"] for t in offered] == ["weather__get_forecast"]
    answer = result.output.messages[-1].content
    assert answer.startswith("Pack boots: ") and '"sky":"snow"' in answer.replace(" ", "")


def test_the_mcp_client_example_calls_the_ticket_router_chain(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKENGINE_")}
    env["TASKENGINE_DB"] = f"sqlite:///{tmp_path / 'runs.db'}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "examples/mcp_client.py", "customer=ACME, category=billing, amount=900"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "tools: ticket-router"
    assert lines[1].startswith("run: ") and len(lines[1]) > 12
    assert lines[2].startswith("output: T-") and "finance-lead" in lines[2]
