"""Every kind of LLM handler against a real llama-server (SmolLM2-135M): types, flow and wire
behaviour, never exact text (a 135M model cannot answer reliably)."""

from __future__ import annotations

import math
import time

import pytest

from taskengine.chain import load_chain
from taskengine.datatypes import ChatHistory, DataType, FunctionCall, Message, ToolCall
from taskengine.hooks.composite import HookRegistry
from taskengine.hooks.local import LocalHookRegistry

from .conftest import EMBED_DIM

pytestmark = pytest.mark.realmodel

GREEDY = {"temperature": 0, "max_tokens": 24}


def chain(*tasks: dict) -> object:
    return load_chain({"id": "real", "tasks": list(tasks)})


async def test_raw_string_streams_tokens_and_usage_comes_from_the_server(make_env):
    arrivals: list[tuple[float, str]] = []

    def on_event(event: dict) -> None:
        if event["type"] == "delta":
            arrivals.append((time.perf_counter(), event["delta"]))

    c = chain({"id": "say", "handler": "raw_string", "execute_config": GREEDY,
               "prompt_template": "Write two sentences about the sea."})  # fmt: skip
    result = await make_env().exec_env(c, "", on_event=on_event)
    assert isinstance(result.output, str) and result.output
    assert len(arrivals) > 3, "tokens arrive one by one, not as one block"
    assert arrivals[-1][0] > arrivals[0][0]
    assert "".join(d for _, d in arrivals).strip() == result.output
    # The server's own token counts: every delta holds at least one token (the server may hold a
    # few back while it checks for a stop word), and never more than max_tokens were generated.
    totals = result.totals
    assert totals["llm_calls"] == 1 and totals["input_tokens"] > 5
    assert len(arrivals) - 1 <= totals["output_tokens"] <= GREEDY["max_tokens"]


async def test_a_stream_reports_the_servers_usage(local_model):
    from taskengine.providers.openai_compat import OpenAICompatProvider

    provider = OpenAICompatProvider("local", base_url=local_model.base_url, timeout=60)
    deltas: list[str] = []

    async def on_delta(delta: str) -> None:
        deltas.append(delta)

    try:
        result = await provider.chat(
            [Message(role="user", content="Name three colours.")], model=local_model.model,
            temperature=0, max_tokens=24, on_delta=on_delta,
        )  # fmt: skip
    finally:
        await provider.aclose()
    assert result.usage_reported, "llama-server sends usage in the stream (include_usage)"
    assert result.output_tokens >= len(deltas) - 1 and result.input_tokens > 0
    assert result.finish_reason in ("stop", "length")


@pytest.mark.parametrize(
    ("task", "valid_paths"),
    [
        (
            {"handler": "condition_key", "valid_conditions": {"yes": True, "no": False},
             "system_instruction": "Answer with one word: yes or no.",
             "prompt_template": "Is the sky blue? Answer yes or no."},
            {("ask", "yes"), ("ask", "no"), ("ask", "failed")},
        ),
        (
            {"handler": "parse_number", "system_instruction": "Answer with a number only.",
             "prompt_template": "How many legs does a cat have?"},
            {("ask", "small"), ("ask", "big"), ("ask", "failed")},
        ),
    ],
    ids=["condition_key", "parse_number"],
)  # fmt: skip
async def test_a_parse_handler_reaches_a_branch_or_on_failure(make_env, task, valid_paths):
    branches = (
        [{"operator": "equals", "when": "true", "goto": "yes"},  # Go: the matched value
         {"operator": "equals", "when": "false", "goto": "no"}]
        if task["handler"] == "condition_key"
        else [{"operator": "lt", "when": "10", "goto": "small"},
              {"operator": "default", "goto": "big"}]
    )  # fmt: skip
    ends = [
        {"id": name, "handler": "noop", "prompt_template": name}
        for name in ("yes", "no", "small", "big")
    ]
    failed = {"id": "failed", "handler": "noop", "prompt_template": "{{ .last_error }}"}
    ask = {"id": "ask", **task, "execute_config": {"temperature": 0},
           "transition": {"on_failure": "failed", "branches": branches}}  # fmt: skip
    result = await make_env().exec_env(chain(ask, *ends, failed), "")
    steps = tuple(u.task_id for u in result.state)
    assert steps in valid_paths
    first = result.state[0]
    assert first.task_handler == task["handler"]
    if steps[-1] == "failed":
        # a clear error: which reply, what was expected, from which model
        assert first.error and "smollm2-135m" in first.error  # names the model that answered
        assert "expected" in first.error or "valid conditions" in first.error
        assert result.output == first.error
    else:
        assert first.output_type in (DataType.BOOL, DataType.INT) and first.error is None


async def test_embedding_is_a_vector_of_the_models_dimension(make_env):
    c = chain({"id": "embed", "handler": "embedding"})
    first = await make_env().exec_env(c, "The cat sat on the mat.")
    other = await make_env().exec_env(c, "Quarterly revenue grew by ten percent.")
    vector = first.output
    assert first.output_type == DataType.VECTOR and len(vector) == EMBED_DIM
    assert all(isinstance(x, float) for x in vector)
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-3)  # normalised
    assert vector != other.output


def weather_hooks(calls: list[dict]) -> HookRegistry:
    local = LocalHookRegistry()

    @local.hook("weather")
    def get_forecast(city: str) -> dict:
        """Weather forecast for a city."""
        calls.append({"city": city})
        return {"city": city, "sky": "sunny", "high_c": 21}

    return HookRegistry(local)


def few_shot() -> ChatHistory:
    """One worked example of a tool call, so the 135M model calls the tool for the next question.

    Measured: the example must end at the call (question, call, next question). With the tool's
    reply and an answer after it, SmolLM2-135M imitates the tool's reply instead of calling.
    """
    call = ToolCall(id="call_1", function=FunctionCall(name="weather.get_forecast",
                                                       arguments='{"city": "Paris"}'))  # fmt: skip
    return ChatHistory(messages=[
        Message(role="user", content="What is the weather in Paris?"),
        Message(role="assistant", content="", call_tools=[call]),
        Message(role="user", content="What is the weather in Oslo?"),
    ])  # fmt: skip


async def test_model_execution_calls_a_tool_and_the_hook_runs(make_env):
    calls: list[dict] = []
    loop = chain(
        {"id": "chat", "handler": "model_execution", "input_var": "input",
         "execute_config": {"hooks": ["weather"], "temperature": 0, "max_tokens": 64},
         "transition": {"branches": [{"operator": "equals", "when": "tool-call", "goto": "tools"},
                                     {"operator": "default", "goto": "end"}]}},
        {"id": "tools", "handler": "execute_tool_calls", "input_var": "chat",
         "transition": {"branches": [{"operator": "default", "goto": "answer"}]}},
        {"id": "answer", "handler": "model_execution", "input_var": "tools",
         "execute_config": {"temperature": 0, "max_tokens": 24}},
    )  # fmt: skip
    result = await make_env(weather_hooks(calls)).exec_env(loop, few_shot(), "chat_history")
    assert [u.task_id for u in result.state] == ["chat", "tools", "answer"]
    assert [u.transition for u in result.state] == ["tool-call", "tools_executed", "executed"]
    assert calls and isinstance(calls[0]["city"], str)
    roles = [m.role for m in result.output.messages]
    assert roles[-3:] == ["assistant", "tool", "assistant"]
    asked = result.output.messages[-3].call_tools
    assert asked and asked[0].function.name == "weather.get_forecast"  # mapped back from the wire
    assert result.output.input_tokens > 0 and result.output.output_tokens > 0


async def test_temperature_zero_gives_the_same_output_twice(make_env):
    c = chain({"id": "say", "handler": "raw_string", "execute_config": GREEDY,
               "prompt_template": "Tell me something about {{ .input }}."})  # fmt: skip
    env = make_env()
    first = await env.exec_env(c, "mountains")
    second = await env.exec_env(c, "mountains")
    assert first.output and first.output == second.output


async def test_max_tokens_is_honoured_and_a_cut_reply_is_reported(make_env):
    c = chain({"id": "story", "handler": "raw_string",
               "execute_config": {"temperature": 0, "max_tokens": 5},
               "prompt_template": "Write a long story about a dragon."})  # fmt: skip
    result = await make_env().exec_env(c, "")
    assert result.totals["output_tokens"] == 5
    assert result.state[0].meta["finish_reason"] == "length"
    assert result.state[0].meta["max_tokens"] == 5
