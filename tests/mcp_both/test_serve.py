"""Chains served as MCP tools, called by the official MCP client: stdio, HTTP, and /mcp on serve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from taskengine.testing.fake_llm import FakeLLMServer

from .chains import ORDER, write_chains, write_config
from .conftest import free_port, stop, wait_for_port

TASKENGINE = [sys.executable, "-c", "from taskengine.cli import main; main()"]


def chain_args(files: list[str]) -> list[str]:
    return [arg for path in files for arg in ("--chain", path)]


def env_for(tmp_path: Path, config: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKENGINE_")}
    env.update(
        TASKENGINE_CONFIG=config,
        TASKENGINE_DB=f"sqlite:///{tmp_path / 'runs.db'}",
        HOME=str(tmp_path),
        **extra,
    )
    return env


async def check_chain_tools(client: Client, llm: FakeLLMServer) -> None:
    """What every transport must do: list the chains as tools, run them, report progress."""
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert sorted(listed) == ["assistant", "order_summary", "refuse"]
    order = listed["order_summary"]
    assert order.description == ORDER["description"]
    assert order.input_schema["properties"]["input"]["type"] == "string"
    assert set(listed["assistant"].input_schema["properties"]) == {"message", "messages"}

    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    result = await client.call_tool(
        "order_summary", {"input": "item=umbrella, qty=2"}, progress_callback=on_progress
    )
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["output"] == {"item": "umbrella", "qty": 2}  # parse_key_value types values
    assert out["outputType"] == "json" and out["status"] == "succeeded"
    assert len(out["runId"]) >= 8
    assert [p[0] for p in progress] == [1, 2]
    assert progress[0][1] == "step 1: parse (parse_key_value)"

    llm.add_rule("capital of France", reply="Paris.")
    chat = await client.call_tool("assistant", {"message": "What is the capital of France?"})
    assert not chat.is_error, chat.content
    messages = chat.structured_content["output"]["messages"]
    assert messages[-1]["content"] == "Paris."
    assert chat.structured_content["outputType"] == "chat_history"

    refused = await client.call_tool("refuse", {"input": "politely"})
    assert refused.is_error and "refused politely" in refused.content[0].text
    assert refused.structured_content["status"] == "failed"
    assert len(refused.structured_content["runId"]) >= 8  # the failed run can be inspected

    bad = await client.call_tool("order_summary", {"input": 42})
    assert bad.is_error
    assert (
        "chain 'order_summary': invalid arguments: input: 42 is not of type 'string'"
        in bad.content[0].text
    )
    unknown = await client.call_tool("nope", {})
    assert unknown.is_error and "unknown tool 'nope'" in unknown.content[0].text


async def test_official_client_calls_chains_over_stdio(tmp_path: Path) -> None:
    async with FakeLLMServer() as llm:
        config = write_config(tmp_path, llm.openai_base_url)
        files = write_chains(tmp_path)
        params = StdioServerParameters(
            command=TASKENGINE[0],
            args=[*TASKENGINE[1:], "mcp", *chain_args(files)],
            env=env_for(tmp_path, config),
            cwd=str(tmp_path),
        )
        async with Client(params) as client:
            await check_chain_tools(client, llm)


async def test_official_client_calls_chains_over_streamable_http(tmp_path: Path) -> None:
    token = "mcp-http-token-5d1e"
    async with FakeLLMServer() as llm:
        config = write_config(tmp_path, llm.openai_base_url)
        files = write_chains(tmp_path)
        port = free_port()
        log = tmp_path / "stderr.log"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [*TASKENGINE, "mcp", "--http", "--port", str(port), *chain_args(files)],
                env=env_for(tmp_path, config, TASKENGINE_API_TOKEN=token),
                cwd=str(tmp_path),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            wait_for_port(port, proc)
            async with httpx.AsyncClient() as anonymous:
                assert (await anonymous.post(url, json={})).status_code == 401
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
                Client(_transport(url, http)) as client,
            ):
                await check_chain_tools(client, llm)
        finally:
            stop(proc)
        assert "Traceback" not in log.read_text()


async def test_serve_mounts_the_stored_chains_at_mcp_behind_the_api_token(tmp_path: Path) -> None:
    token = "api-token-for-mcp-test"
    async with FakeLLMServer() as llm:
        config = write_config(tmp_path, llm.openai_base_url)
        port = free_port()
        proc = subprocess.Popen(
            [*TASKENGINE, "serve", "--port", str(port)],
            env=env_for(tmp_path, config, TASKENGINE_API_TOKEN=token),
            cwd=str(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc)
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=base, headers=auth) as api:
                from .chains import CHAT, REFUSE

                for chain in (ORDER, CHAT, REFUSE):
                    assert (await api.post("/taskchains", json=chain)).status_code == 201
                denied = await api.post("/mcp", headers={"Authorization": "Bearer wrong"}, json={})
                assert denied.status_code == 401
            async with (
                httpx2.AsyncClient(headers=auth) as http,
                Client(_transport(f"{base}/mcp", http)) as client,
            ):
                await check_chain_tools(client, llm)
        finally:
            stop(proc)


def _transport(url: str, http: httpx2.AsyncClient):
    from mcp.client.streamable_http import streamable_http_client

    return streamable_http_client(url, http_client=http)


@pytest.mark.parametrize("args", [["--chain", "/nonexistent/chain.yaml"]])
def test_mcp_command_fails_in_one_line(tmp_path: Path, args: list[str]) -> None:
    proc = subprocess.run(
        [*TASKENGINE, "mcp", *args],
        env=env_for(tmp_path, str(tmp_path / "none.yaml")),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
