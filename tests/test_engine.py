"""The run loop: a chain built inline, run, and judged by the path it took and its output."""

import asyncio

import pytest

from taskengine.chain import load_chain
from taskengine.datatypes import ChatHistory, DataType, Message, OpenAIChatResponse
from taskengine.engine import SimpleEnv
from taskengine.engine.record import SimpleInspector
from taskengine.errors import (
    DataConversionError,
    MaxStepsExceededError,
    RaisedError,
    StepValidationError,
    TaskExecutionError,
    TaskTimeoutError,
    TemplateError,
)
from taskengine.testing.mock import MockTaskExecutor


def chain(*tasks, **extra):
    return load_chain({"id": "t", "tasks": list(tasks), **extra})


def task(id, handler="noop", goto="end", **kw):
    kw.setdefault("transition", {"branches": [{"operator": "default", "goto": goto}]})
    return {"id": id, "handler": handler, **kw}


def path(result):
    return [u.task_id for u in result.state]


async def test_parse_and_branch_without_llm():
    c = chain(
        task(
            "parse",
            "parse_key_value",
            transition={
                "branches": [
                    {"operator": "equals", "when": "parsed", "goto": "urgent"},
                    {"operator": "default", "goto": "normal"},
                ]
            },
        ),
        task("urgent", prompt_template="URGENT {{ .parse.who }}"),
        task("normal", prompt_template="normal {{ .parse.who }}"),
    )
    result = await SimpleEnv().exec_env(c, "who=ann, priority=high")
    assert path(result) == ["parse", "urgent"]
    assert result.output == "URGENT ann"
    assert result.status == "succeeded"
    output, output_type, state = result  # unpacks like the seed's triple
    assert (output, output_type, len(state)) == ("URGENT ann", DataType.STRING, 2)
    assert state[0].output_type == DataType.JSON


async def test_input_var_and_previous_output():
    c = chain(
        task("a", prompt_template="A:{{ .input }}", goto="b"),
        task("b", prompt_template="B:{{ .previous_output }}", goto="c"),
        task("c", input_var="input"),
    )
    result = await SimpleEnv().exec_env(c, "x")
    assert result.output == "x"
    assert result.state[1].input_var == ""
    assert result.state[2].input_var == "input"


async def test_input_conversion_error_is_clear():
    with pytest.raises(DataConversionError, match="cannot convert 'abc' to int"):
        await SimpleEnv().exec_env(chain(task("a")), "abc", "int")


async def test_retries_with_backoff_then_success():
    mock = MockTaskExecutor(
        error_sequence=[TaskExecutionError("flaky"), TaskExecutionError("flaky")],
        mock_output="ok",
        mock_transition_value="ok",
    )
    retries = []

    from taskengine.engine.events import RunObserver

    class Watch(RunObserver):
        async def on_retry(self, *, run, task_id, attempt, error, delay_s):
            retries.append((task_id, attempt, delay_s))

    env = SimpleEnv(mock, observers=[Watch()], retry_base=0.001, retry_max=0.002)
    result = await env.exec_env(chain(task("a", retry_on_failure=2)), "in")
    assert result.output == "ok"
    assert mock.call_count() == 3
    assert [r[:2] for r in retries] == [("a", 1), ("a", 2)]
    assert all(0 <= r[2] <= 0.002 for r in retries)
    assert result.state[0].meta == {"attempts": 3}


async def test_exhausted_retries_go_to_on_failure_with_last_error():
    mock = MockTaskExecutor(error_sequence=[RaisedError("boom")] * 2, mock_output="handled")
    c = chain(
        task(
            "a",
            retry_on_failure=1,
            transition={
                "on_failure": "recover",
                "branches": [{"operator": "default", "goto": "end"}],
            },
        ),
        task("recover", prompt_template="saw: {{ .last_error }}"),
    )
    env = SimpleEnv(retry_base=0.001)
    env.executor = mock
    result = await env.exec_env(c, "in")
    assert path(result) == ["a", "recover"]
    assert result.state[0].error and "boom" in result.state[0].error
    assert mock.called_with_input == "saw: chain 't', task 'a': boom"


async def test_failure_without_on_failure_raises_with_context():
    c = chain(task("a", "raise_error", prompt_template="bad {{ .input }}"))
    with pytest.raises(RaisedError) as info:
        await SimpleEnv().exec_env(c, "thing", run_id="r1")
    assert info.value.task_id == "a" and info.value.run_id == "r1" and info.value.chain_id == "t"
    assert "bad thing" in str(info.value)


async def test_timeout():
    class Slow:
        async def task_exec(self, ctx, task, input, input_type):
            await asyncio.sleep(5)

    with pytest.raises(TaskTimeoutError, match="timed out after 20ms"):
        await SimpleEnv(Slow()).exec_env(chain(task("a", timeout="20ms")), "x")


async def test_max_steps_guard_stops_runaway_loop():
    c = chain(task("spin", goto="spin"), max_steps=50)
    with pytest.raises(MaxStepsExceededError, match="max_steps=50"):
        await SimpleEnv().exec_env(c, "x")


async def test_self_loop_counts_down_with_numeric_operators():
    counter = {"n": 0}

    class Count:
        async def task_exec(self, ctx, task, input, input_type):
            counter["n"] += 1
            return counter["n"], DataType.INT, str(counter["n"])

    c = chain(
        task(
            "tick",
            transition={
                "branches": [
                    {"operator": "lt", "when": "5", "goto": "tick"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        )
    )
    result = await SimpleEnv(Count()).exec_env(c, "x")
    assert path(result) == ["tick"] * 5
    assert result.output == 5


async def test_template_error_names_task_and_variable():
    # `later` exists (so lint accepts it) but has not run when `a` prints.
    c = chain(task("a", print="{{ .later }}", goto="later"), task("later"))
    with pytest.raises(TemplateError) as info:
        await SimpleEnv().exec_env(c, "x")
    assert info.value.task_id == "a"
    assert "missing variable 'later'" in str(info.value)


async def test_print_goes_to_callback_not_stdout(capsys):
    seen = []
    await SimpleEnv(print_fn=seen.append).exec_env(chain(task("a", print="got {{ .a }}")), "hello")
    assert seen == ["got hello"]
    assert capsys.readouterr().out == ""


async def test_debug_captures_input_and_output():
    result = await SimpleEnv().exec_env(
        chain(task("a", prompt_template="P{{ .input }}"), debug=True), "x"
    )
    unit = result.state[0].to_dict()
    assert unit["input"] == "Px" and unit["output"] == "Px"
    assert set(unit) >= {
        "taskID",
        "taskHandler",
        "inputType",
        "outputType",
        "transition",
        "duration",
        "error",
        "input",
        "output",
        "inputVar",
    }
    quiet = await SimpleEnv().exec_env(chain(task("a")), "x")
    assert quiet.state[0].input == ""


async def test_compose_strategies():
    h1 = ChatHistory(messages=[Message(role="user", content="one")])
    c = chain(
        task("hist", "noop", goto="merge"),
        task("merge", input_var="hist", compose={"with_var": "input"}, goto="append"),
        task(
            "append",
            compose={"with_var": "word", "strategy": "append_string_to_chat_history"},
            goto="end",
        ),
        task("word"),
    )
    with pytest.raises(TaskExecutionError, match="'word' is not set"):
        await SimpleEnv().exec_env(c, h1, "chat_history")
    c2 = chain(
        task("hist", goto="merge"), task("merge", input_var="hist", compose={"with_var": "input"})
    )
    result = await SimpleEnv().exec_env(c2, h1, "chat_history")
    assert [m.content for m in result.output.messages] == ["one", "one"]
    c3 = chain(
        task("obj", "parse_key_value", goto="over"),
        task("over", compose={"with_var": "extra", "strategy": "override"}, goto="end"),
        task("extra", "parse_key_value"),
    )
    with pytest.raises(TaskExecutionError):
        await SimpleEnv().exec_env(c3, "a=1", "string")


async def test_compose_override_merges_objects_and_records_variable():
    c = chain(
        task("x", "parse_key_value", goto="y"),
        task(
            "y",
            "parse_key_value",
            input_var="input",
            compose={"with_var": "x", "strategy": "override"},
        ),
    )
    result = await SimpleEnv().exec_env(c, "a=1, b=2", "string")
    assert result.output == {"a": 1, "b": 2}


async def test_breakpoint_pauses_before_task():
    inspector = SimpleInspector()
    inspector.set_breakpoint("b")
    c = chain(task("a", goto="b"), task("b"))
    result = await SimpleEnv(inspector=inspector).exec_env(c, "x")
    assert result.status == "paused" and result.paused_at == "b"
    assert path(result) == ["a"]
    state = inspector.last.get_current_state()
    assert state.current_task.id == "b" and state.variables["a"] == "x"


async def test_events_callback_sees_steps_in_order():
    events = []
    await SimpleEnv().exec_env(chain(task("a", goto="b"), task("b")), "x", on_event=events.append)
    kinds = [(e["type"], e.get("taskID") or e.get("step", {}).get("taskID")) for e in events]
    assert kinds == [
        ("step_start", "a"),
        ("step_end", "a"),
        ("step_start", "b"),
        ("step_end", "b"),
        ("run_end", None),
    ]


async def test_output_schema_is_enforced_and_retried():
    mock = MockTaskExecutor(
        mock_output_sequence=[{"n": "x"}, {"n": 1}], mock_output_type=DataType.JSON
    )
    c = chain(
        task(
            "a",
            retry_on_failure=1,
            output_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
        )
    )
    result = await SimpleEnv(mock, retry_base=0.001).exec_env(c, "x")
    assert result.output == {"n": 1}
    mock.reset()
    mock.mock_output = {"n": "never"}
    with pytest.raises(StepValidationError, match="output does not match output_schema at n"):
        await SimpleEnv(mock).exec_env(
            chain(task("a", output_schema={"properties": {"n": {"type": "integer"}}})), "x"
        )


async def test_parse_transition_and_openai_response():
    c = chain(
        task(
            "route",
            "parse_transition",
            transition={
                "branches": [
                    {"operator": "equals", "when": "shout", "goto": "loud"},
                    {"operator": "default", "goto": "end"},
                ]
            },
        ),
        task("loud", prompt_template="{{ .route | upper }}"),
    )
    result = await SimpleEnv().exec_env(c, "/shout hello")
    assert result.output == "/SHOUT HELLO"  # Go: parse_transition passes its input on whole
    history = ChatHistory(
        messages=[Message(role="user", content="q"), Message(role="assistant", content="a")],
        model="m",
        input_tokens=3,
        output_tokens=1,
    )
    result = await SimpleEnv().exec_env(
        chain(task("conv", "convert_to_openai_chat_response")), history, "chat_history"
    )
    assert isinstance(result.output, OpenAIChatResponse)
    assert result.output.choices[0].message.content == "a"
    assert result.output.usage.total_tokens == 4


async def test_llm_handler_without_provider_is_a_clear_error():
    from taskengine.errors import ProviderNotConfiguredError

    with pytest.raises(ProviderNotConfiguredError, match="no model provider is configured"):
        await SimpleEnv().exec_env(chain(task("ask", "raw_string", prompt_template="hi")), "x")


async def test_cancellation_propagates():
    started = asyncio.Event()

    class Hang:
        async def task_exec(self, ctx, task, input, input_type):
            started.set()
            await asyncio.sleep(30)

    job = asyncio.ensure_future(SimpleEnv(Hang()).exec_env(chain(task("a")), "x"))
    await started.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


async def test_exception_from_custom_executor_is_wrapped():
    class Broken:
        async def task_exec(self, ctx, task, input, input_type):
            raise KeyError("nope")

    with pytest.raises(TaskExecutionError, match="KeyError"):
        await SimpleEnv(Broken()).exec_env(chain(task("a")), "x")


def test_mock_executor_tracks_calls():
    mock = MockTaskExecutor(
        mock_output_sequence=["a", "b"], mock_output="z", mock_transition_value_sequence=["1"]
    )
    result = asyncio.run(
        SimpleEnv(mock).exec_env(chain(task("a", goto="b"), task("b", goto="c"), task("c")), "in")
    )
    assert result.output == "z"
    assert mock.call_count() == 3
    assert [c[0] for c in mock.calls] == ["a", "b", "c"]
    assert mock.called_with_task.id == "c"
    assert mock.called_with_prompt == "b"
    mock.reset()
    assert mock.call_count() == 0 and mock.calls == []


async def test_errors_that_cannot_succeed_are_not_retried():
    from taskengine.errors import ProviderNotConfiguredError

    mock = MockTaskExecutor(mock_error=ProviderNotConfiguredError("no provider"))
    with pytest.raises(ProviderNotConfiguredError):
        await SimpleEnv(mock, retry_base=0.001).exec_env(chain(task("a", retry_on_failure=3)), "x")
    assert mock.call_count() == 1
    missing = StepValidationError("needs text", missing=["text"])
    assert not missing.retryable and StepValidationError("bad reply").retryable


async def test_retry_log_records_carry_run_and_task(caplog):
    mock = MockTaskExecutor(error_sequence=[TaskExecutionError("flaky")], mock_output="ok")
    with caplog.at_level("WARNING", logger="taskengine.engine"):
        await SimpleEnv(mock, retry_base=0.001).exec_env(
            chain(task("a", retry_on_failure=1)), "x", run_id="r9"
        )
    [record] = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert (record.run_id, record.chain_id, record.task_id) == ("r9", "t", "a")
