"""Every example in examples/ runs as its README paragraph says, against real local servers.

Models are `FakeLLMServer` (a real HTTP server speaking the Ollama and OpenAI APIs); the
remote hook is the example's own FastAPI service; `taskengine serve` is a real process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskengine.testing import FakeLLMServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
EXE = BIN / "taskengine"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A clean environment: its own run store, no config file, the venv first on PATH."""
    (tmp_path / "none.yaml").write_text("{}\n")
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TASKENGINE_", "OLLAMA_", "OPENAI_", "GEMINI_"))
    }
    return {
        **clean,
        "TASKENGINE_DB": str(tmp_path / "runs.db"),
        "TASKENGINE_CONFIG": str(tmp_path / "none.yaml"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
    }


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def run(argv: list[str], env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env={**env, **extra},
        timeout=90,
        cwd=ROOT,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Poll `url` until it answers (any HTTP status) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args} exited: {proc.stderr.read()}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.05)


def background(argv: list[str], env: dict[str, str], ready_url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(a) for a in argv],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready_url, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    finally:
        if proc.stderr:
            proc.stderr.close()


def path_of(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 0, out.stderr
    return [step["taskID"] for step in json.loads(out.stdout)["state"]]


# --- the gallery -----------------------------------------------------------------------------


def test_triage_with_only_ollama_host_set(env, llm):
    chain = EXAMPLES / "triage" / "triage.yaml"
    llm.add_rule("outage", reply="false")
    llm.add_rule("Rate 1", reply="2")
    llm.add_rule("two-sentence reply", reply="Sorry about that, we are on it.")
    out = run([EXE, "run", chain, "--input", "The export button is grey"], env, OLLAMA_HOST=llm.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Sorry about that, we are on it.\n"
    assert {r.model for r in llm.requests} == {"qwen2.5:7b"} and len(llm.requests) == 3
    llm.clear_rules()
    llm.add_rule("outage", reply="true")
    urgent = run([EXE, "run", chain, "--input", "Site down", "--json"], env, OLLAMA_HOST=llm.url)
    assert path_of(urgent) == ["urgent", "page_oncall"]
    assert "paging on-call for: Site down" in urgent.stderr


def test_agent_calls_local_tools_until_it_answers(env, llm):
    llm.reply_sequence(
        [
            {"tool_calls": [{"name": "weather.forecast", "arguments": {"city": "Oslo"}}]},
            "Yes, take an umbrella: rain in Oslo tomorrow.",
        ]
    )
    out = run(
        [EXE, "run", EXAMPLES / "agent" / "agent.yaml", "--hooks", EXAMPLES / "agent" / "weather_hooks.py",
         "--input", "Umbrella in Oslo tomorrow?", "--json"],
        env,
        OLLAMA_HOST=llm.url,
    )  # fmt: skip
    assert path_of(out) == ["chat", "tools", "chat", "answer", "reply"]
    assert json.loads(out.stdout)["output"] == "Yes, take an umbrella: rain in Oslo tomorrow."
    offered = {t["function"]["name"] for t in llm.requests[0].tools or []}
    assert offered == {"weather.forecast", "weather.alerts"}
    tool_message = llm.requests[1].messages[-1]
    assert tool_message["role"] == "tool" and '"sky":"rain"' in tool_message["content"]


def test_a_served_chain_answers_the_openai_sdk(env, llm):
    port = free_port()
    env = {**env, "OLLAMA_HOST": llm.url, "TASKENGINE_API_TOKEN": "s3cret"}
    llm.add_rule(regex=r"^Does this message .*my password", reply="true")
    llm.add_rule(regex=r"^Does this message ", reply="false")
    llm.add_rule("haiku", reply="Five, seven, five syllables.")
    server = background([EXE, "serve", "--port", port], env, f"http://127.0.0.1:{port}/health")
    try:
        out = run(
            [sys.executable, EXAMPLES / "openai_endpoint" / "client.py", "What is a haiku?"],
            env,
            TASKENGINE_URL=f"http://127.0.0.1:{port}",
        )
        again = run(  # a second run replaces the stored chain instead of failing
            [sys.executable, EXAMPLES / "openai_endpoint" / "client.py", "my password please"],
            {**env, "TASKENGINE_URL": f"http://127.0.0.1:{port}"},
        )
    finally:
        stop(server)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Five, seven, five syllables.\nFive, seven, five syllables.\n"
    refusal = "Sorry, I cannot help with passwords or keys."
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{refusal}\n{refusal}\n"


def test_two_providers_fall_back_when_the_first_is_down(env, tmp_path):
    config = EXAMPLES / "providers" / "taskengine.yaml"
    chain = EXAMPLES / "providers" / "summarise.yaml"
    with FakeLLMServer() as local, FakeLLMServer() as backup:
        urls = {"LOCAL_LLM_URL": local.url, "BACKUP_LLM_URL": backup.openai_base_url}
        local.add_rule(reply="from local")
        backup.add_rule(reply="from backup")
        argv = [EXE, "--config", config, "run", chain, "--input", "a long text", "--json"]
        healthy = json.loads(run(argv, env, **urls).stdout)
        local.clear_rules()
        local.add_rule(status=503)
        fallen = json.loads(run(argv, env, **urls).stdout)
    assert healthy["output"] == "from local"
    assert healthy["state"][0]["meta"] == {
        "provider": "local",
        "model": "qwen2.5:7b",
        "input_tokens": 7,
        "output_tokens": 2,
    }
    assert fallen["output"] == "from backup"
    assert fallen["state"][0]["meta"] == {
        "provider": "backup",
        "model": "qwen2.5:7b",
        "input_tokens": 7,
        "output_tokens": 2,
    }


def test_step_style_executor(env, llm):
    llm.add_rule("Summarise", reply="taskengine runs chains durably.")
    llm.add_rule("short title", reply='{"title": "Durable chains"}')
    out = run(
        [sys.executable, EXAMPLES / "step_style" / "summarise_steps.py"], env, OLLAMA_HOST=llm.url
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (
        data["title"] == "Durable chains" and data["summary"] == "taskengine runs chains durably."
    )
    assert (
        "Context:\ntaskengine runs declarative LLM task chains, durably."
        in (llm.requests[0].messages[-1]["content"])
    )


def test_remote_openapi_hook(env):
    port = free_port()
    service = background(
        [sys.executable, EXAMPLES / "remote_hook" / "inventory_service.py", "--port", port],
        {**env, "INVENTORY_KEY": "k-123"},
        f"http://127.0.0.1:{port}/openapi.json",
    )
    urls = {"INVENTORY_URL": f"http://127.0.0.1:{port}", "INVENTORY_KEY": "k-123"}
    config = EXAMPLES / "remote_hook" / "taskengine.yaml"
    chain = EXAMPLES / "remote_hook" / "order.yaml"
    try:
        outputs = [
            run([EXE, "--config", config, "run", chain, "--input", sku], env, **urls)
            for sku in ("A-100", "B-200", "Z-9")
        ]
        wrong_key = run(
            [EXE, "--config", config, "run", chain, "--input", "A-100"],
            env,
            **{**urls, "INVENTORY_KEY": "wrong"},
        )
    finally:
        stop(service)
    assert [o.stdout for o in outputs[:2]] == [
        "reserved 1 x A-100, 11 left\n",
        "B-200 is out of stock: back-ordered\n",
    ], [o.stderr for o in outputs]
    assert outputs[2].stdout.startswith("cannot order Z-9:") and "HTTP 404" in outputs[2].stdout
    assert "HTTP 401" in wrong_key.stdout and "k-123" not in wrong_key.stdout + wrong_key.stderr


def test_human_in_the_loop_walkthrough(env, llm):
    llm.add_rule("release notes", reply="Adds dark mode.")
    out = run(["bash", EXAMPLES / "human_in_the_loop" / "walkthrough.sh"], env, OLLAMA_HOST=llm.url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("paused run: ")
    assert lines[1] == "paused | draft: Adds dark mode."
    assert lines[2] == "RELEASE NOTES: Dark mode is here: switch it on under Settings > Theme."
    run_id = lines[0].removeprefix("paused run: ")
    shown = json.loads(run([EXE, "runs", "show", run_id, "--json"], env).stdout)
    assert shown["status"] == "succeeded"
    assert [s["taskID"] for s in shown["state"]] == ["draft", "review", "publish"]


def test_the_pytest_example_passes(env):
    out = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         EXAMPLES / "testing" / "test_triage_chain.py"],
        env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 passed" in out.stdout
