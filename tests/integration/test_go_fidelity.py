"""Chains written for the Go engine take the same path, with the same outputs and recorded state.

Each test runs a chain end to end: SimpleEnv → SimpleExec → resolver → a real HTTP
FakeLLMServer (or real local/built-in hooks), and checks what the Go engine (v0.0.74) does.
"""

from __future__ import annotations

import json

import pytest

from taskengine.chain import load_chain
from taskengine.chain.lint import lint_chain
from taskengine.datatypes import ChatHistory, DataType, Message
from taskengine.engine import SimpleEnv
from taskengine.engine.record import CapturedStateUnit
from taskengine.errors import ParseError, TaskEngineError, TaskExecutionError
from taskengine.hooks.builtin import BuiltinHooks
from taskengine.hooks.composite import HookRegistry
from taskengine.hooks.local import LocalHookRegistry
from taskengine.providers.config import ProviderConfig
from taskengine.providers.registry import ProviderRegistry
from taskengine.providers.resolver import ModelResolver
from taskengine.testing.fake_llm import FakeLLMServer


@pytest.fixture
def llm():
    with FakeLLMServer(default_reply="OK") as srv:
        yield srv


@pytest.fixture
async def env(llm):
    registries = []

    def make(hooks=None):
        config = ProviderConfig(name="fake", type="openai_compatible", base_url=llm.openai_base_url)
        registry = ProviderRegistry.from_settings(
            [config], {}, default_provider="fake", default_model="fake-model"
        )
        registries.append(registry)
        return SimpleEnv(resolver=ModelResolver(registry), hooks=hooks, retry_base=0.001)

    yield make
    for registry in registries:
        await registry.aclose()


def chain(*tasks):
    return load_chain({"id": "go", "tasks": list(tasks)})


def branches(*pairs, default="end"):
    out = [{"operator": op, "when": when, "goto": goto} for op, when, goto in pairs]
    return {"branches": [*out, {"operator": "default", "goto": default}]}


def to(goto="end"):
    return {"branches": [{"operator": "default", "goto": goto}]}


def path(result):
    return [u.task_id for u in result.state]


def transitions(result):
    return [u.transition for u in result.state]


def hooks():
    local = LocalHookRegistry()

    @local.hook("crm")
    def lookup(customer: str) -> dict:
        """Look a customer up."""
        return {"customer": customer, "tier": "gold"}

    @local.hook("crm")
    def explode(customer: str) -> dict:
        """Always fails."""
        raise RuntimeError(f"crm is down for {customer}")

    return HookRegistry(local, BuiltinHooks())


# --- 1. compose ------------------------------------------------------------------------------


async def test_compose_override_merges_the_output_after_the_task(env):
    c = chain(
        {"id": "defaults", "handler": "parse_key_value", "transition": to("ticket")},
        {
            "id": "ticket",
            "handler": "parse_key_value",
            "prompt_template": "team=billing; level=2",
            "compose": {"with_var": "defaults", "strategy": "override"},
            "transition": to("show"),
        },
        {"id": "show", "handler": "noop", "transition": to()},
    )
    result = await env().exec_env(c, "level=1; region=eu")
    # the task parsed its own prompt; compose merged `defaults` into that output, its keys winning
    assert result.output == {"team": "billing", "level": 1, "region": "eu"}
    ticket = result.state[1]
    assert ticket.input_type == DataType.STRING and ticket.output_type == DataType.JSON
    assert (
        result.state[2].input_type == DataType.JSON
    )  # the next task's input is the composed value


async def test_compose_variables_and_previous_output(env):
    c = chain(
        {"id": "base", "handler": "parse_key_value", "transition": to("merge")},
        {
            "id": "merge",
            "handler": "parse_key_value",
            "prompt_template": "b=2",
            "compose": {"with_var": "base"},  # default strategy for two objects: override
            "transition": to("echo"),
        },
        {
            "id": "echo",
            "handler": "noop",
            "prompt_template": "{{ .merge.a }}/{{ .merge_composed.b }}/{{ .previous_output.a }}",
            "transition": to(),
        },
    )
    result = await env().exec_env(c, "a=1")
    assert result.output == "1/2/1"


async def test_compose_override_refuses_non_objects_and_fails_the_run(env):
    c = chain(
        {
            "id": "say",
            "handler": "raw_string",
            "compose": {"with_var": "input", "strategy": "override"},
            "transition": {
                "on_failure": "recover",
                "branches": [{"operator": "default", "goto": "end"}],
            },
        },
        {"id": "recover", "handler": "noop", "transition": to()},
    )
    with pytest.raises(TaskExecutionError, match="override") as caught:
        await env().exec_env(c, "hello")
    # Go returns the compose error from the run: on_failure is not taken
    assert [u.task_id for u in caught.value.run_result.state] == ["say"]


async def test_compose_merge_chat_histories_puts_with_var_messages_first(llm, env):
    llm.reply_sequence([{"reply": "First answer."}, {"reply": "Second answer."}])
    c = chain(
        {"id": "first", "handler": "model_execution", "transition": to("second")},
        {
            "id": "second",
            "handler": "model_execution",
            "input_var": "input",
            "compose": {"with_var": "first"},  # both chat histories: merge_chat_histories
            "transition": to(),
        },
    )
    question = ChatHistory(messages=[Message(role="user", content="Where?")])
    result = await env().exec_env(c, question, "chat_history")
    contents = [m.content for m in result.output.messages]
    assert contents == ["Where?", "First answer.", "Where?", "Second answer."]
    assert result.output_type == DataType.CHAT_HISTORY
    # the second model call saw only its own input: compose ran after the task, on its output
    sent = llm.requests_for("/v1/chat/completions")[-1].messages
    assert [m["content"] for m in sent] == ["Where?"]
    assert result.output.input_tokens > 0 and result.output.output_tokens > 0


async def test_compose_append_string_puts_the_string_first_as_system(llm, env):
    llm.add_rule("Write a persona", reply="You are terse.")
    c = chain(
        {
            "id": "persona",
            "handler": "raw_string",
            "prompt_template": "Write a persona",
            "compose": {"with_var": "input", "strategy": "append_string_to_chat_history"},
            "transition": to("chat"),
        },
        {"id": "chat", "handler": "model_execution", "transition": to()},
    )
    history = ChatHistory(messages=[Message(role="user", content="What is 2+2?")], model="m1")
    result = await env().exec_env(c, history, "chat_history")
    persona = result.state[0]
    assert persona.output_type == DataType.STRING  # recorded before compose, as in Go
    assert result.state[1].input_type == DataType.ANY  # string + chat_history: the type is any
    sent = llm.requests_for("/v1/chat/completions")[-1].messages
    assert sent[0] == {"role": "system", "content": "You are terse."}
    assert sent[1]["content"] == "What is 2+2?"


# --- 2. transition values -----------------------------------------------------------------------


CONDITION = {
    "id": "q",
    "handler": "condition_key",
    "prompt_template": "Is it a question? {{ .input }}",
    "valid_conditions": {"yes": True, "no": False},
}


@pytest.mark.parametrize(("reply", "taken", "value"), [("yes", "on_true", "true"), ("no", "on_false", "false")])  # fmt: skip
async def test_condition_key_branches_on_true_and_false(llm, env, reply, taken, value):
    llm.add_rule("Is it a question", reply=reply)
    c = chain(
        {**CONDITION, "transition": branches(("equals", "true", "on_true"), ("equals", "false", "on_false"))},
        {"id": "on_true", "handler": "noop", "transition": to()},
        {"id": "on_false", "handler": "noop", "transition": to()},
    )  # fmt: skip
    result = await env().exec_env(c, "why?")
    assert path(result) == ["q", taken] and transitions(result)[0] == value
    assert result.state[0].output_type == DataType.BOOL


async def test_condition_key_never_matches_the_reply_key(llm, env):
    """A Go chain comparing with the key ("yes") goes to its default: the value is "true"."""
    llm.add_rule("Is it a question", reply="yes")
    c = chain(
        {**CONDITION, "transition": branches(("equals", "yes", "on_yes"), default="other")},
        {"id": "on_yes", "handler": "noop", "transition": to()},
        {"id": "other", "handler": "noop", "transition": to()},
    )
    result = await env().exec_env(c, "why?")
    assert path(result) == ["q", "other"]


async def test_failed_steps_record_go_transition_values(llm, env):
    llm.add_rule("Is it a question", reply="maybe")
    llm.add_rule("count", reply="many")
    recover = {"on_failure": "next", "branches": [{"operator": "default", "goto": "end"}]}
    c = chain(
        {**CONDITION, "transition": {**recover, "on_failure": "n"}},
        {"id": "n", "handler": "parse_number", "prompt_template": "count",
         "transition": {**recover, "on_failure": "r"}},
        {"id": "r", "handler": "parse_range", "prompt_template": "count",
         "transition": {**recover, "on_failure": "end"}},
    )  # fmt: skip
    result = await env().exec_env(c, "why?")
    assert path(result) == ["q", "n", "r"]
    assert transitions(result) == ["false", "0", ""]
    assert all(u.error for u in result.state)


def test_lint_accepts_true_and_warns_about_keys():
    ok = chain({**CONDITION, "transition": branches(("equals", "true", "end"))})
    assert not [p for p in lint_chain(ok) if p.severity == "warning"]
    keyed = chain({**CONDITION, "transition": branches(("equals", "yes", "end"))})
    warnings = [p.message for p in lint_chain(keyed) if p.severity == "warning"]
    assert any("'yes' can never match" in w and "maps to true" in w for w in warnings)


async def test_numbers_scores_noop_and_embedding_values(llm, env):
    llm.add_rule("count", reply="42")
    llm.add_rule("rate", reply="7.5")
    c = chain(
        {"id": "n", "handler": "parse_number", "prompt_template": "count",
         "transition": branches(("equals", "42", "s"))},
        {"id": "s", "handler": "parse_score", "prompt_template": "rate",
         "transition": branches(("equals", "7.50", "nop"))},
        {"id": "nop", "handler": "noop", "transition": branches(("equals", "noop", "e"))},
        {"id": "e", "handler": "embedding", "prompt_template": "vector me",
         "transition": branches(("equals", "ok", "end"), default="nop")},
    )  # fmt: skip
    result = await env().exec_env(c, "")
    assert path(result) == ["n", "s", "nop", "e"]
    assert transitions(result) == ["42", "7.50", "noop", "ok"]
    assert result.output_type == DataType.VECTOR


async def test_hook_values_on_local_and_builtin_hooks(env):
    c = chain(
        {"id": "plain", "handler": "hook", "hook": {"name": "crm", "tool_name": "lookup",
         "args": {"customer": "{{ .input }}"}}, "transition": branches(("equals", "ok", "tiered"))},
        {"id": "tiered", "handler": "hook", "hook": {"name": "crm", "tool_name": "lookup",
         "args": {"customer": "{{ .input }}"}}, "output_template": "{{ tier }}",
         "transition": branches(("equals", "gold", "echoed"))},
        {"id": "echoed", "handler": "hook", "hook": {"name": "echo", "tool_name": "echo"},
         "transition": branches(("equals", "ok", "broken"))},
        {"id": "broken", "handler": "hook", "hook": {"name": "crm", "tool_name": "explode",
         "args": {"customer": "{{ .input }}"}},
         "transition": {"on_failure": "fallback", "branches": [{"operator": "default", "goto": "end"}]}},
        {"id": "fallback", "handler": "noop", "transition": to()},
    )  # fmt: skip
    result = await env(hooks()).exec_env(c, "ACME")
    assert path(result) == ["plain", "tiered", "echoed", "broken", "fallback"]
    assert transitions(result) == ["ok", "gold", "ok", "failed", "noop"]
    assert result.state[0].output_type == DataType.JSON
    assert result.state[1].output_type == DataType.STRING
    assert "crm is down" in result.state[3].error


async def test_tool_call_values(llm, env):
    llm.reply_sequence(
        [
            {"tool_calls": [{"name": "crm.lookup", "arguments": {"customer": "ACME"}}]},
            {"reply": "Gold."},
        ]
    )
    c = chain(
        {"id": "chat", "handler": "model_execution", "execute_config": {"hooks": ["crm"]},
         "transition": branches(("equals", "tool-call", "tools"))},
        {"id": "tools", "handler": "execute_tool_calls", "input_var": "chat",
         "transition": branches(("equals", "tools_executed", "chat"))},
    )  # fmt: skip
    history = ChatHistory(messages=[Message(role="user", content="Tier of ACME?")])
    result = await env(hooks()).exec_env(c, history, "chat_history")
    assert path(result) == ["chat", "tools", "chat"]
    assert transitions(result) == ["tool-call", "tools_executed", "executed"]
    # the last message has no calls: no_calls_found; input that is not a chat: no_op
    c2 = chain({"id": "again", "handler": "execute_tool_calls", "transition": to()})
    done = ChatHistory(messages=[Message(role="assistant", content="Gold.")])
    result = await env(hooks()).exec_env(c2, done, "chat_history")
    assert transitions(result) == ["no_calls_found"] and result.output == done
    plain = await env(hooks()).exec_env(
        chain({"id": "text", "handler": "execute_tool_calls", "transition": to()}), "just text"
    )
    assert transitions(plain) == ["no_op"] and plain.output == "just text"


async def test_parse_key_value_and_parse_transition_values(env):
    c = chain(
        {"id": "kv", "handler": "parse_key_value", "transition": branches(("equals", "parsed", "again"))},
        {"id": "again", "handler": "parse_key_value", "transition": branches(("equals", "already_json", "cmd"))},
        {"id": "cmd", "handler": "parse_transition", "prompt_template": "/escalate {{ .kv.who }} now",
         "transition": branches(("equals", "escalate", "none"))},
        {"id": "none", "handler": "parse_transition", "prompt_template": "no command here",
         "transition": branches(("equals", "pass", "end"))},
    )  # fmt: skip
    result = await env().exec_env(c, "who=ann")
    assert path(result) == ["kv", "again", "cmd", "none"]
    assert transitions(result) == ["parsed", "already_json", "escalate", "pass"]
    assert result.state[1].output_type == DataType.JSON
    assert result.output == "no command here"  # parse_transition keeps its whole input


# --- 3. handler outputs --------------------------------------------------------------------------


async def test_parse_key_value_delimiters_and_types(env):
    c = chain({"id": "kv", "handler": "parse_key_value", "transition": to()})
    run = env().exec_env
    assert (await run(c, "a=1; b=x, y; c: 'q'; d=2.5; e=false")).output == {
        "a": 1, "b": "x, y", "c": "q", "d": 2.5, "e": False,
    }  # fmt: skip
    assert (await run(c, "name: Ann\nage=30")).output == {"name": "Ann", "age": 30}
    assert (await run(c, 'x="1", y=true')).output == {"x": 1, "y": True}
    with pytest.raises(ParseError, match="invalid key-value pair"):
        await run(c, "a=1, lonely")


@pytest.mark.parametrize(("reply", "output"), [("5-7", "5-7"), (" 3 - 4 ", "3-4"), ("5", "5-5")])
async def test_parse_range_reads_what_go_reads(llm, env, reply, output):
    llm.add_rule("span", reply=reply)
    c = chain({"id": "r", "handler": "parse_range", "prompt_template": "span", "transition": to()})
    assert (await env().exec_env(c, "")).output == output


@pytest.mark.parametrize("reply", ["1-2-3", "5-", "5-7-"])
async def test_parse_range_rejects_malformed_replies(llm, env, reply):
    llm.add_rule("span", reply=reply)
    c = chain(
        {"id": "r", "handler": "parse_range", "prompt_template": "span",
         "transition": {"on_failure": "bad", "branches": [{"operator": "default", "goto": "end"}]}},
        {"id": "bad", "handler": "noop", "transition": to()},
    )  # fmt: skip
    result = await env().exec_env(c, "")
    assert path(result) == ["r", "bad"] and "range" in result.state[0].error


async def test_equals_is_exact(llm, env):
    llm.add_rule("pad", reply="done")
    c = chain(
        {"id": "say", "handler": "raw_string", "prompt_template": "pad",
         "transition": branches(("equals", " done", "spaced"), ("equals", "done", "exact"))},
        {"id": "spaced", "handler": "noop", "transition": to()},
        {"id": "exact", "handler": "noop", "transition": to()},
    )  # fmt: skip
    assert path(await env().exec_env(c, "")) == ["say", "exact"]


# --- 4. ConvertToType at the run's input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [("T", "bool", True), ("FALSE", "bool", False), (3.9, "int", 3), ("not json", "json", "not json"),
     ({"a": 1}, "nil", {"a": 1}), (2.0, "string", "2")],
)  # fmt: skip
async def test_run_input_converts_as_go_does(env, value, dtype, expected):
    c = chain({"id": "n", "handler": "noop", "transition": to()})
    result = await env().exec_env(c, value, dtype)
    assert result.output == expected and result.state[0].input_type == DataType.from_string(dtype)


async def test_run_input_refuses_what_go_refuses(env):
    c = chain({"id": "n", "handler": "noop", "transition": to()})
    with pytest.raises(TaskEngineError, match="ParseBool"):
        await env().exec_env(c, "yes", "bool")
    with pytest.raises(TaskEngineError, match="to int"):
        await env().exec_env(c, "4.0", "int")


# --- 6. CapturedStateUnit JSON -------------------------------------------------------------------------


async def test_captured_state_unit_json_has_nanoseconds_and_an_empty_error(llm, env):
    llm.add_rule("slow", reply="fine", delay=0.05)
    c = chain({"id": "s", "handler": "raw_string", "prompt_template": "slow", "transition": to()})
    result = await env().exec_env(c, "")
    data = json.loads(json.dumps(result.state[0].to_dict()))
    assert isinstance(data["duration"], int) and data["duration"] >= 50_000_000
    assert data["durationMs"] == pytest.approx(data["duration"] / 1e6, abs=0.001)
    assert data["error"] == {"error": ""}
    assert data["inputType"] == "string" and data["outputType"] == "string"
    back = CapturedStateUnit.from_dict(data)
    assert back.duration_ns == data["duration"] and back.error in ("", None)
    go_written = {
        "taskID": "t",
        "taskHandler": "noop",
        "duration": 452000000,
        "error": {"error": ""},
    }
    assert CapturedStateUnit.from_dict(go_written).duration_ms == 452.0


# --- 8. SimpleExec.Prompt / Embed and ConvertChatHistoryToOpenAI ------------------------------------


async def test_simple_exec_prompt_and_embed_as_in_go(llm, env):
    from taskengine import LLMExecutionConfig, convert_chat_history_to_openai

    llm.add_rule("Capital of France", reply="  Paris  ")
    executor = env().executor
    assert await executor.prompt("Be brief.", None, "Capital of France?") == "Paris"
    sent = llm.last_request().messages
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1]["content"] == "Capital of France?"
    assert await executor.embed(None, "hello") == pytest.approx(llm.embedding_for("hello"))
    with pytest.raises(TaskExecutionError, match="unprocessable empty prompt"):
        await executor.prompt("", None, "")
    with pytest.raises(TaskExecutionError, match="multiple models"):
        await executor.embed(LLMExecutionConfig(models=["a", "b"]), "x")

    history = ChatHistory(
        messages=[Message(role="user", content="Hi"), Message(role="assistant", content="Hello")],
        model="m",
        input_tokens=3,
        output_tokens=1,
    )
    response = convert_chat_history_to_openai("chatcmpl-1", history)
    assert response.id == "chatcmpl-1" and response.object == "chat.completion"
    assert response.choices[0].message.content == "Hello" and response.usage.total_tokens == 4
