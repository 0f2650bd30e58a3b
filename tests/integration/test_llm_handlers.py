"""Every LLM handler, end to end: SimpleEnv → resolver → provider → a real HTTP FakeLLMServer."""

import json

import pytest

from taskengine.chain import load_chain
from taskengine.datatypes import ChatHistory, DataType, Message
from taskengine.engine import SimpleEnv
from taskengine.errors import (
    ParseError,
    ProviderUnavailableError,
    TaskTimeoutError,
    TokenLimitError,
)
from taskengine.hooks.composite import HookRegistry
from taskengine.hooks.local import LocalHookRegistry
from taskengine.providers.config import ProviderConfig
from taskengine.providers.registry import ProviderRegistry
from taskengine.providers.resolver import ModelResolver
from taskengine.testing.fake_llm import FakeLLMServer


@pytest.fixture
def server():
    with FakeLLMServer(default_reply="OK") as srv:
        yield srv


@pytest.fixture
async def make_env(server):
    made = []

    def make(*, kind="openai_compatible", hooks=None, extra_providers=(), **env_kw):
        url = server.url if kind == "ollama" else server.openai_base_url
        configs = [ProviderConfig(name="fake", type=kind, base_url=url), *extra_providers]
        registry = ProviderRegistry.from_settings(
            configs, {}, default_provider="fake", default_model="fake-model"
        )
        made.append(registry)
        return SimpleEnv(resolver=ModelResolver(registry), hooks=hooks, retry_base=0.001, **env_kw)

    yield make
    for registry in made:
        await registry.aclose()


def chain(*tasks, **extra):
    return load_chain({"id": "llm", "tasks": list(tasks), **extra})


def end():
    return {"branches": [{"operator": "default", "goto": "end"}]}


def path(result):
    return [u.task_id for u in result.state]


@pytest.mark.parametrize("kind", ["openai_compatible", "ollama"])
async def test_condition_key_branches_on_a_sloppy_reply(server, make_env, kind):
    server.add_rule("Is this a question", reply=' "Yes." ')
    c = chain(
        {
            "id": "q",
            "handler": "condition_key",
            "prompt_template": "Is this a question? {{ .input }}",
            "system_instruction": "Answer yes or no.",
            "valid_conditions": {"yes": True, "no": False},
            "execute_config": {"temperature": 0.3},
            "transition": {
                "branches": [
                    {"operator": "equals", "when": "true", "goto": "answer"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        },
        {
            "id": "answer",
            "handler": "raw_string",
            "prompt_template": "Answer: {{ .input }}",
            "transition": end(),
        },
    )
    result = await make_env(kind=kind).exec_env(c, "why is the sky blue")
    assert path(result) == ["q", "answer"]
    assert result.state[0].output_type == DataType.BOOL and result.state[0].transition == "true"
    assert result.output == "OK"
    first = server.requests_for("/v1/chat/completions" if kind != "ollama" else "/api/chat")[0]
    assert first.temperature == pytest.approx(0.3)
    assert first.messages[0] == {"role": "system", "content": "Answer yes or no."}
    assert first.messages[-1]["content"] == "Is this a question? why is the sky blue"
    assert (
        result.state[0].meta["provider"] == "fake" and result.state[0].meta["model"] == "fake-model"
    )


async def test_numbers_scores_and_ranges(server, make_env):
    server.add_rule("count", reply="There are 42 of them.")
    server.add_rule("rate", reply="Score: 7.5/10")
    server.add_rule("span", reply="5")
    c = chain(
        {
            "id": "n",
            "handler": "parse_number",
            "prompt_template": "count",
            "transition": {
                "branches": [
                    {"operator": "gt", "when": "40", "goto": "s"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        },
        {
            "id": "s",
            "handler": "parse_score",
            "prompt_template": "rate",
            "transition": {
                "branches": [
                    {"operator": "in_range", "when": "7-8", "goto": "r"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        },
        {"id": "r", "handler": "parse_range", "prompt_template": "span", "transition": end()},
    )
    result = await make_env().exec_env(c, "")
    assert path(result) == ["n", "s", "r"]
    assert [u.output_type for u in result.state] == [DataType.INT, DataType.FLOAT, DataType.STRING]
    assert result.output == "5-5"


async def test_embedding(server, make_env):
    result = await make_env().exec_env(
        chain({"id": "e", "handler": "embedding", "transition": end()}), "hello"
    )
    assert result.output_type == DataType.VECTOR
    assert result.output == pytest.approx(server.embedding_for("hello"))


async def test_parse_failure_names_task_model_and_reply_then_on_failure(server, make_env):
    server.add_rule("how many", reply="lots and lots")
    c = chain(
        {
            "id": "n",
            "handler": "parse_number",
            "prompt_template": "how many?",
            "retry_on_failure": 1,
            "transition": {
                "on_failure": "fallback",
                "branches": [{"operator": "default", "goto": "end"}],
            },
        },
        {
            "id": "fallback",
            "handler": "noop",
            "prompt_template": "{{ .last_error }}",
            "transition": end(),
        },
    )
    result = await make_env().exec_env(c, "")
    assert path(result) == ["n", "fallback"]
    assert len(server.requests_for("/v1/chat/completions")) == 2  # retried once
    assert "task 'n'" in result.output and "'lots and lots'" in result.output
    assert "model 'fake-model'" in result.output
    with pytest.raises(ParseError):
        await make_env().exec_env(
            chain(
                {
                    "id": "n",
                    "handler": "parse_number",
                    "prompt_template": "how many?",
                    "transition": end(),
                }
            ),
            "",
        )


async def test_condition_outside_valid_conditions_fails(server, make_env):
    server.add_rule(reply="perhaps")
    c = chain(
        {
            "id": "q",
            "handler": "condition_key",
            "valid_conditions": {"yes": True, "no": False},
            "transition": end(),
        }
    )
    with pytest.raises(ParseError, match="'perhaps' is not one of the valid conditions"):
        await make_env().exec_env(c, "?")


async def test_server_error_then_fallback_to_next_provider(server, make_env):
    with FakeLLMServer(default_reply="from backup") as backup:
        server.add_rule(status=500, body="kaput")
        env = make_env(
            extra_providers=[
                ProviderConfig(
                    name="backup", type="openai_compatible", base_url=backup.openai_base_url
                )
            ]
        )
        c = chain(
            {
                "id": "a",
                "handler": "raw_string",
                "execute_config": {"providers": ["fake", "backup"]},
                "transition": end(),
            }
        )
        result = await env.exec_env(c, "hi")
        assert result.output == "from backup"
        assert result.state[0].meta["provider"] == "backup"


async def test_unreachable_server_fails_clearly_and_fast(make_env, server):
    env = make_env(
        extra_providers=[
            ProviderConfig(
                name="dead", type="openai_compatible", base_url="http://127.0.0.1:9/v1", timeout=2
            )
        ]
    )
    c = chain(
        {
            "id": "a",
            "handler": "raw_string",
            "execute_config": {"provider": "dead"},
            "transition": end(),
        }
    )
    with pytest.raises(ProviderUnavailableError) as info:
        await env.exec_env(c, "hi")
    assert info.value.task_id == "a" and "dead" in str(info.value)


async def test_slow_model_hits_the_task_timeout(server, make_env):
    server.add_rule(delay=3, reply="late")
    c = chain({"id": "a", "handler": "raw_string", "timeout": "200ms", "transition": end()})
    with pytest.raises(TaskTimeoutError, match="timed out after 200ms"):
        await make_env().exec_env(c, "hi")


async def test_token_limit(server, make_env):
    c = chain({"id": "a", "handler": "raw_string", "transition": end()}, token_limit=5)
    with pytest.raises(TokenLimitError, match="token_limit of 5"):
        await make_env().exec_env(c, "word " * 50)
    assert server.requests == []


async def test_streaming_deltas_reach_the_event_callback(server, make_env):
    server.add_rule(reply="one two three four")
    events = []
    result = await make_env().exec_env(
        chain({"id": "a", "handler": "raw_string", "transition": end()}),
        "go",
        on_event=events.append,
    )
    deltas = [e["delta"] for e in events if e["type"] == "delta"]
    assert len(deltas) > 1 and "".join(deltas).strip() == result.output == "one two three four"


def tool_hooks():
    local = LocalHookRegistry()

    @local.hook("weather")
    def get_forecast(city: str) -> dict:
        """Forecast for a city."""
        return {"city": city, "sky": "sunny", "high_c": 24}

    @local.hook("weather")
    def get_alerts(city: str) -> list:
        """Weather alerts."""
        return []

    return HookRegistry(local)


TOOL_LOOP = [
    {
        "id": "chat",
        "handler": "model_execution",
        "system_instruction": "You are a weather bot.",
        "execute_config": {"hooks": ["weather"], "hide_tools": ["get_alerts"]},
        "transition": {
            "branches": [
                {"operator": "equals", "when": "tool-call", "goto": "tools"},
                {"operator": "default", "goto": "end"},
            ]
        },
    },
    {
        "id": "tools",
        "handler": "execute_tool_calls",
        "input_var": "chat",
        "transition": {"branches": [{"operator": "default", "goto": "chat"}]},
    },
]


def final_answer(request):
    tool_msgs = [m for m in request["messages"] if m["role"] == "tool"]
    return "It is " + json.loads(tool_msgs[-1]["content"])["sky"] if tool_msgs else "no tool"


async def test_tool_calling_loop_until_executed(server, make_env):
    server.reply_sequence(
        [
            {"tool_calls": [{"name": "weather.get_forecast", "arguments": {"city": "Oslo"}}]},
            {"reply": final_answer},
        ]
    )
    history = ChatHistory(messages=[Message(role="user", content="Weather in Oslo?")])
    result = await make_env(hooks=tool_hooks()).exec_env(chain(*TOOL_LOOP), history, "chat_history")
    assert path(result) == ["chat", "tools", "chat"]
    assert [u.transition for u in result.state] == ["tool-call", "tools_executed", "executed"]
    roles = [m.role for m in result.output.messages]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]  # system instruction inserted once
    assert result.output.messages[-1].content == "It is sunny"
    offered = server.requests_for("/v1/chat/completions")[0].tools
    assert (
        len(offered) == 1
    )  # get_alerts is hidden; the wire name is mapped for OpenAI's name rules
    assert result.output.input_tokens > 0 and result.output.output_tokens > 0


async def test_model_calling_hidden_or_invented_tools_gets_told(server, make_env):
    server.reply_sequence(
        [
            {
                "tool_calls": [
                    {"name": "weather.get_alerts", "arguments": {"city": "Oslo"}},
                    {"name": "made.up", "arguments": {}},
                ]
            },
            {"reply": "sorry"},
        ]
    )
    history = ChatHistory(messages=[Message(role="user", content="alerts?")])
    result = await make_env(hooks=tool_hooks()).exec_env(chain(*TOOL_LOOP), history, "chat_history")
    tool_msgs = [m.content for m in result.output.messages if m.role == "tool"]
    assert len(tool_msgs) == 2
    assert all("unknown tool" in m for m in tool_msgs)


async def test_malformed_tool_arguments_fail_the_step(server, make_env):
    from taskengine.datatypes import FunctionCall, ToolCall

    bad = ChatHistory(
        messages=[
            Message(role="user", content="x"),
            Message(
                role="assistant",
                call_tools=[
                    ToolCall(
                        id="c1",
                        function=FunctionCall(name="weather.get_forecast", arguments="{city: Oslo"),
                    )
                ],
            ),
        ]
    )
    c = chain(
        {
            "id": "tools",
            "handler": "execute_tool_calls",
            "execute_config": {"hooks": ["weather"]},
            "transition": end(),
        }
    )
    with pytest.raises(ParseError, match="malformed JSON arguments"):
        await make_env(hooks=tool_hooks()).exec_env(c, bad, "chat_history")


async def test_openai_request_input_with_client_tools(server, make_env):
    server.add_rule(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])
    request = {
        "model": "whatever",
        "max_tokens": 42,
        "temperature": 0.7,
        "messages": [{"role": "user", "content": "find x"}],
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
        ],
    }
    c = chain(
        {
            "id": "chat",
            "handler": "model_execution",
            "execute_config": {"pass_clients_tools": True},
            "transition": {
                "branches": [
                    {"operator": "equals", "when": "tool-call", "goto": "out"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        },
        {"id": "out", "handler": "convert_to_openai_chat_response", "transition": end()},
    )
    result = await make_env().exec_env(c, request, "openai_chat")
    assert result.output.choices[0].finish_reason == "tool_calls"
    assert result.output.choices[0].message.tool_calls[0].function.name == "lookup"
    sent = server.last_request()
    assert sent.temperature == pytest.approx(0.7)
    assert sent.max_tokens == 42
    assert [t["function"]["name"] for t in sent.tools] == ["lookup"]


def test_first_call_of_a_process_is_not_charged_the_sdk_import(server, tmp_path):
    """A fresh process's first model step is not charged the SDK's import: it loads before.

    The import is made to take 2 s (a finder that sleeps on `openai`), against a 1 s step
    timeout, so the test tells the two apart on a loaded machine too."""
    import subprocess
    import sys

    script = tmp_path / "cold.py"
    script.write_text(
        "import asyncio, sys, time\n"
        "class SlowSDK:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'openai':\n"
        "            time.sleep(2.0)\n"
        "        return None\n"
        "sys.meta_path.insert(0, SlowSDK())\n"
        "from taskengine.chain import load_chain\n"
        "from taskengine.engine import SimpleEnv\n"
        "from taskengine.providers.config import ProviderConfig\n"
        "from taskengine.providers.registry import ProviderRegistry\n"
        "from taskengine.providers.resolver import ModelResolver\n"
        "async def main():\n"
        "    assert 'openai' not in sys.modules\n"
        f"    cfg = [ProviderConfig(name='f', base_url={server.openai_base_url!r})]\n"
        "    reg = ProviderRegistry.from_settings(cfg, {}, default_provider='f', default_model='fake-model')\n"
        "    chain = load_chain({'id': 'c', 'tasks': [{'id': 'a', 'handler': 'raw_string', 'timeout': '1s'}]})\n"
        "    result = await SimpleEnv(resolver=ModelResolver(reg)).exec_env(chain, 'hi')\n"
        "    await reg.aclose()\n"
        "    print(result.output)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK"


async def test_prompts_reach_the_model_without_control_characters(server, make_env):
    c = chain(
        {
            "id": "a",
            "handler": "raw_string",
            "prompt_template": "say {{ .input }}",
            "transition": end(),
        }
    )
    await make_env().exec_env(c, "hi\x00\x1b[31m there\u202e!\r\nok")
    assert server.last_request().messages[-1]["content"] == "say hi[31m there!\nok"


async def test_limits_from_settings_are_enforced():
    from taskengine.errors import DataConversionError

    env = SimpleEnv(max_input_bytes=10, max_steps_default=3, max_retries=0)
    with pytest.raises(DataConversionError, match="input is 11 bytes, over the limit of 10"):
        await env.exec_env(chain({"id": "a", "handler": "noop", "transition": end()}), "x" * 11)
    loop = chain(
        {
            "id": "a",
            "handler": "noop",
            "transition": {"branches": [{"operator": "default", "goto": "a"}]},
        }
    )
    from taskengine.errors import MaxStepsExceededError

    with pytest.raises(MaxStepsExceededError, match="max_steps=3"):
        await env.exec_env(loop, "x")
    explicit = load_chain(
        {
            "id": "llm",
            "max_steps": 5,
            "tasks": [
                {
                    "id": "a",
                    "handler": "noop",
                    "transition": {"branches": [{"operator": "default", "goto": "a"}]},
                }
            ],
        }
    )
    with pytest.raises(MaxStepsExceededError, match="max_steps=5"):  # the chain's own value wins
        await env.exec_env(explicit, "x")
