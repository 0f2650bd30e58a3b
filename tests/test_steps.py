"""The step-style TaskExecutor (seed 000) against a real FakeLLMServer and real SQLite stores."""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

import pytest
from pydantic import BaseModel

import taskengine
from taskengine.config import Settings
from taskengine.engine.events import RunObserver
from taskengine.errors import (
    ChainValidationError,
    LLMError,
    ProviderNotConfiguredError,
    ProviderRequestError,
    StepValidationError,
    TaskExecutionError,
    TaskTimeoutError,
)
from taskengine.providers.config import ProviderConfig
from taskengine.steps import StepResult, TaskExecutor
from taskengine.store import open_store
from taskengine.testing.fake_llm import FakeLLMServer

_PROVIDER_ENV = (
    "OLLAMA_HOST",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "GEMINI_API_KEY",
    "OPENROUTER_API_KEY",
    "TASKENGINE_PROVIDER",
    "TASKENGINE_MODEL",
)


@pytest.fixture(autouse=True)
def _no_ambient_providers(monkeypatch):
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake():
    with FakeLLMServer(default_reply="default reply", models=["fake-model"]) as srv:
        yield srv


@pytest.fixture
def settings(fake) -> Settings:
    return Settings(
        providers=[ProviderConfig(name="fake", base_url=fake.openai_base_url, timeout=5)],
        default_provider="fake",
    )


def user_text(request) -> str:
    return request.messages[-1]["content"]


# --- the seed's flow ---------------------------------------------------------------------------


async def test_seed_flow_prompts_each_step_with_its_instruction_and_the_data(fake, settings):
    fake.add_rule("Extract the city", reply="Oslo")
    fake.add_rule("Describe the weather", reply="Rainy, 12 C")
    executor = TaskExecutor(llm_model="fake-model", settings=settings)
    executor.task_steps = [
        {
            "id": "city",
            "name": "Find the city",
            "required_info": ["question"],
            "instruction": "Extract the city from the question.",
        },
        {
            "id": "weather",
            "name": "Weather",
            "required_info": ["city"],
            "instruction": "Describe the weather in the city.",
        },
    ]

    result = await executor.execute({"question": "Will it rain in Oslo?"})

    assert isinstance(result, StepResult) and isinstance(result, dict)
    assert result == {"question": "Will it rain in Oslo?", "city": "Oslo", "weather": "Rainy, 12 C"}
    assert result.steps == {"city": {"city": "Oslo"}, "weather": {"weather": "Rainy, 12 C"}}
    assert result.status == "succeeded" and result.chain_id == "task_executor" and result.run_id
    first, second = fake.requests_for("/v1/chat/completions")
    assert first.model == "fake-model"
    assert user_text(first).startswith("Extract the city from the question.")
    assert '"question": "Will it rain in Oslo?"' in user_text(first)
    assert '"city": "Oslo"' in user_text(second)  # the second step sees the first step's result
    assert result.totals["llm_calls"] == 2 and result.totals["total_tokens"] > 0
    assert [(u.task_id, u.task_handler) for u in result.state] == [
        ("city", "step:city"),
        ("weather", "step:weather"),
    ]
    assert result.state[0].meta["provider"] == "fake"
    assert result.to_dict()["data"]["city"] == "Oslo"


class Reviewer(TaskExecutor):
    """The seed's handler pattern verbatim, plus a step without a handler."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.task_steps = [
            {
                "id": "review",
                "name": "Review",
                "required_info": ["code"],
                "instruction": "Review this code.",
            },
            {"id": "count", "name": "Count", "required_info": ["result"], "instruction": "unused"},
        ]

    def preprocess(self, data):
        return {"code": data["code"].upper()}

    def postprocess(self, response):
        return response.removeprefix("VERDICT: ")

    async def handle_review(self, step_input: dict) -> dict:
        processed_data = self.preprocess(step_input)
        llm_response = await self.llm_call(
            instruction=step_input["instruction"], context=processed_data
        )
        result = self.postprocess(llm_response)
        return {"result": result}

    def handle_count(self, step_input: dict) -> dict:  # a plain function works as well
        return {"length": len(step_input["result"])}


async def test_subclass_handlers_use_llm_call_preprocess_and_postprocess(fake, settings):
    fake.add_rule("Review this code.", reply="VERDICT: looks fine")

    result = await Reviewer(llm_model="fake-model", settings=settings).execute({"code": "print(1)"})

    assert result["result"] == "looks fine" and result["length"] == len("looks fine")
    assert result.steps["review"] == {"result": "looks fine"}
    sent = user_text(fake.last_request())
    assert '"code": "PRINT(1)"' in sent and sent.count("Review this code.") == 1
    assert result.chain_id == "reviewer"


# --- validation ---------------------------------------------------------------------------------


async def test_missing_required_info_of_the_first_step_fails_before_the_run():
    executor = TaskExecutor()
    executor.task_steps = [
        {"id": "a", "name": "Step A", "required_info": ["x", "y"], "instruction": "go"}
    ]

    with pytest.raises(StepValidationError) as info:
        await executor.execute({"x": 1})

    assert info.value.missing == ["y"] and info.value.task_id == "a"
    assert "step 'a' (Step A) is missing required info: y" in str(info.value)


class Forgetful(TaskExecutor):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.task_steps = [{"id": "a"}, {"id": "b", "required_info": ["made_by_a", "other"]}]

    async def handle_a(self, step_input):
        return {"made_by_a": True}

    async def handle_b(self, step_input):  # pragma: no cover - never reached
        return {}


async def test_missing_required_info_of_a_later_step_names_step_run_and_keys(tmp_path):
    store_url = f"sqlite:///{tmp_path}/runs.db"

    with pytest.raises(StepValidationError) as info:
        await Forgetful(store=store_url, max_retries=0).execute({})

    err = info.value
    assert (err.task_id, err.missing, err.field) == ("b", ["other"], "required_info")
    assert err.run_id and err.chain_id == "forgetful"
    assert taskengine.StepValidationError is StepValidationError and isinstance(
        err, taskengine.TaskEngineError
    )
    assert err.partial.steps == {"a": {"made_by_a": True}}


@pytest.mark.parametrize(
    ("steps", "fragments"),
    [
        ([], ["no task_steps to run"]),
        (
            [{"id": "a", "instrution": "x"}],
            ["unknown key 'instrution' (did you mean 'instruction'?)"],
        ),
        (
            [{"id": "a"}, {"id": "a"}, {"id": "input"}],
            ["duplicate step id 'a'", "'input' is reserved"],
        ),
        (
            [{"name": "no id"}, "text"],
            ["task_steps[0].id: is required", "a step must be a dict, got str"],
        ),
        (
            [{"id": "a", "timeout": "soon"}, {"id": "b", "retries": -1}],
            ["task_steps[0].timeout", "task_steps[1].retries"],
        ),
        ([{"id": "a", "": 1}], ["task_steps[0][\"\"]: unknown key ''"]),
        ([{"id": "a", "output_schema": {"type": "nope"}}], ["not a valid JSON Schema"]),
        (
            [{"id": "a", "name": "no instruction, no handle_a"}],
            ["step 'a' has no instruction and no handle_a"],
        ),
    ],
)
async def test_bad_task_steps_report_every_problem_at_once(steps, fragments):
    executor = TaskExecutor()
    executor.task_steps = steps

    with pytest.raises(ChainValidationError) as info:
        await executor.execute({})

    for fragment in fragments:
        assert fragment in str(info.value)


async def test_input_must_be_a_small_json_dict():
    executor = TaskExecutor(max_input_bytes=100)
    executor.task_steps = [{"id": "a", "instruction": "x"}]

    with pytest.raises(
        StepValidationError, match="input_data is 2,011 bytes, over the limit of 100 bytes"
    ):
        await executor.execute({"text": "é" * 1000})
    with pytest.raises(StepValidationError, match="must be a dict, got list"):
        await executor.execute([1, 2])  # type: ignore[arg-type]
    with pytest.raises(StepValidationError, match="JSON-serializable"):
        await executor.execute({"when": object()})


class Verdict(BaseModel):
    label: str
    score: float


async def test_a_reply_that_fails_its_schema_is_retried_with_the_reason(fake, settings):
    fake.reply_sequence(["not json at all", '```json\n{"label": "spam", "score": 0.9}\n```'])
    executor = TaskExecutor(
        llm_model="fake-model", settings=settings, retry_base=0.001, retry_max=0.01
    )
    executor.task_steps = [
        {"id": "verdict", "instruction": "Classify the mail.", "response_model": Verdict}
    ]

    result = await executor.execute({"mail": "WIN MONEY"})

    assert result["verdict"] == {"label": "spam", "score": 0.9}
    first, second = fake.requests_for("/v1/chat/completions")
    assert "Reply with JSON only" in user_text(first) and '"score"' in user_text(first)
    assert "Your previous reply was rejected: the reply is not valid JSON" in user_text(second)
    assert result.state[0].meta["attempts"] == 2


async def test_a_reply_that_never_validates_raises_after_the_retries(fake, settings):
    fake.add_rule(reply='{"label": 3}')
    executor = TaskExecutor(
        llm_model="fake-model", settings=settings, max_retries=2, retry_base=0.001
    )
    schema = {"type": "object", "required": ["label"], "properties": {"label": {"type": "string"}}}
    executor.task_steps = [{"id": "label", "instruction": "Label it.", "output_schema": schema}]

    with pytest.raises(StepValidationError) as info:
        await executor.execute({"x": 1})

    assert len(fake.requests_for("/v1/chat/completions")) == 3
    err = info.value
    assert err.task_id == "label" and err.run_id and err.field == "output_schema"
    assert "at label: 3 is not of type 'string'" in err.message
    assert type(err.__cause__).__name__ == "ValidationError"


async def test_handler_results_are_validated_too():
    class Typed(TaskExecutor):
        task_steps: ClassVar = [{"id": "score", "response_model": Verdict, "retries": 0}]

        async def handle_score(self, step_input):
            return {"label": "ok", "score": "high"}

    with pytest.raises(
        StepValidationError, match="does not match Verdict: score: Input should be a valid number"
    ):
        await Typed().execute({})


# --- retries, timeouts, LLM errors ---------------------------------------------------------------


async def test_llm_call_retries_a_500_with_backoff(fake, settings, caplog):
    fake.add_rule(status=500, times=1)
    fake.add_rule(reply="recovered")
    executor = TaskExecutor(
        llm_model="fake-model", settings=settings, retry_base=0.001, retry_max=0.01
    )
    executor.task_steps = [{"id": "answer", "instruction": "Answer."}]

    result = await executor.execute({"q": "?"})

    assert result["answer"] == "recovered"
    assert len(fake.requests_for("/v1/chat/completions")) == 2
    assert result.state[0].meta["llm_attempts"] == 2 and "attempts" not in result.state[0].meta
    assert "retry 1 of 3" in caplog.text


async def test_a_request_error_is_not_retried_and_names_step_and_run(fake, settings):
    fake.add_rule(status=400, body={"error": {"message": "bad request"}})
    executor = TaskExecutor(llm_model="fake-model", settings=settings, max_retries=0)
    executor.task_steps = [{"id": "ask", "instruction": "Ask."}]

    with pytest.raises(ProviderRequestError) as info:
        await executor.execute({})

    assert len(fake.requests_for("/v1/chat/completions")) == 1
    assert info.value.task_id == "ask" and info.value.run_id and info.value.status_code == 400
    assert isinstance(info.value, LLMError)


async def test_no_provider_configured_is_a_clear_error():
    executor = TaskExecutor(settings=Settings(), max_retries=0)
    executor.task_steps = [{"id": "ask", "instruction": "Ask."}]

    with pytest.raises(ProviderNotConfiguredError) as info:
        await executor.execute({})

    assert info.value.task_id == "ask"


class Flaky(TaskExecutor):
    def __init__(self, failures: int, **kwargs):
        super().__init__(**kwargs)
        self.failures = failures
        self.calls = 0
        self.task_steps = [{"id": "work"}]

    async def handle_work(self, step_input):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"flaky #{self.calls}")
        return {"done": self.calls}


async def test_failed_steps_are_retried_with_exponential_backoff():
    delays = []

    class Retries(RunObserver):
        async def on_retry(self, *, run, task_id, attempt, error, delay_s):
            delays.append((task_id, attempt, delay_s))

    executor = Flaky(2, retry_base=0.01, retry_max=0.015, observers=[Retries()])

    result = await executor.execute({})

    assert result == {"done": 3} and executor.calls == 3
    assert [(t, a) for t, a, _ in delays] == [("work", 1), ("work", 2)]
    assert delays[0][2] <= 0.01 and delays[1][2] <= 0.015  # full jitter below base * 2**n, capped


async def test_a_step_that_keeps_failing_raises_with_its_cause():
    executor = Flaky(5, max_retries=1, retry_base=0.001)

    with pytest.raises(TaskExecutionError) as info:
        await executor.execute({})

    assert executor.calls == 2
    assert isinstance(info.value.__cause__, ConnectionError) and info.value.task_id == "work"


async def test_step_timeout():
    class Slow(TaskExecutor):
        task_steps: ClassVar = [{"id": "slow", "timeout": "50ms", "retries": 1}]

        async def handle_slow(self, step_input):
            await asyncio.sleep(5)

    with pytest.raises(TaskTimeoutError) as info:
        await Slow(retry_base=0.001).execute({})

    assert info.value.task_id == "slow" and "timed out after 50" in str(info.value)


# --- checkpoints, partial results, resume ----------------------------------------------------------


class Pipeline(TaskExecutor):
    """Three steps; `broken` makes the middle one fail."""

    def __init__(self, broken: bool, **kwargs):
        super().__init__(**kwargs)
        self.broken = broken
        self.ran: list[str] = []
        self.task_steps = [
            {"id": "load"},
            {"id": "transform", "required_info": ["rows"]},
            {"id": "save"},
        ]

    async def handle_load(self, step_input):
        self.ran.append("load")
        return {"rows": [1, 2, 3]}

    async def handle_transform(self, step_input):
        self.ran.append("transform")
        if self.broken:
            raise ValueError("bad row")
        return {"rows": [r * 10 for r in step_input["rows"]]}

    async def handle_save(self, step_input):
        self.ran.append("save")
        return {"saved": len(step_input["rows"])}


async def test_a_failed_run_keeps_partial_results_in_the_error_and_the_store(tmp_path):
    url = f"sqlite:///{tmp_path}/runs.db"

    with pytest.raises(TaskExecutionError) as info:
        await Pipeline(True, store=url, max_retries=0).execute({"source": "db"})

    err = info.value
    assert err.task_id == "transform" and isinstance(err.__cause__, ValueError)
    assert err.partial == {"source": "db", "rows": [1, 2, 3]} and err.partial.status == "failed"
    assert list(err.partial.steps) == ["load"]
    store = await open_store(url)
    try:
        run = await store.get_run(err.run_id)
        steps = await store.get_steps(err.run_id)
    finally:
        await store.aclose()
    assert run.status == "failed" and run.error["task_id"] == "transform"
    assert [(s.task_id, s.status) for s in steps] == [
        ("load", "succeeded"),
        ("transform", "failed"),
    ]


async def test_resume_finishes_a_failed_run_without_repeating_completed_steps(tmp_path):
    url = f"sqlite:///{tmp_path}/runs.db"
    with pytest.raises(TaskExecutionError) as info:
        await Pipeline(True, store=url, max_retries=0).execute({})
    fixed = Pipeline(False, store=url, max_retries=0)

    result = await fixed.resume(info.value.run_id)

    assert fixed.ran == ["transform", "save"]
    assert result == {"rows": [10, 20, 30], "saved": 3}
    assert (
        list(result.steps) == ["load", "transform", "save"] and result.run_id == info.value.run_id
    )
    again = await fixed.resume(info.value.run_id)  # a finished run just reports its result
    assert again == result and fixed.ran == ["transform", "save"]


async def test_resume_refuses_a_run_of_other_steps(tmp_path):
    url = f"sqlite:///{tmp_path}/runs.db"
    with pytest.raises(TaskExecutionError) as info:
        await Pipeline(True, store=url, max_retries=0).execute({})
    other = Flaky(0, store=url)

    with pytest.raises(TaskExecutionError, match=r"ran the steps \['load', 'transform', 'save'\]"):
        await other.resume(info.value.run_id)


async def test_resume_needs_a_store():
    with pytest.raises(TaskExecutionError, match="resume needs a run store"):
        await Pipeline(False).resume("nope")


# --- resources, sanitization, observers ------------------------------------------------------------


async def test_async_with_keeps_one_store_and_llm_call_works_outside_a_run(
    fake, settings, tmp_path
):
    fake.add_rule(reply=FakeLLMServer.echo)
    executor = Pipeline(
        False, store=f"sqlite:///{tmp_path}/runs.db", llm_model="fake-model", settings=settings
    )

    async with executor:
        first = await executor.execute({})
        second = await executor.execute({})
        echoed = await executor.llm_call("Say\x00 hi\x1b[31m", context={"who": "you\u202e"})

    assert first.run_id != second.run_id and first == second
    assert echoed == 'Say hi[31m\n\nContext:\n{\n  "who": "you"\n}'
    assert executor._resources is None and executor._standalone is None


async def test_llm_call_outside_a_run_is_closed_by_aclose(fake, settings):
    executor = TaskExecutor(llm_model="fake-model", settings=settings)
    try:
        assert await executor.llm_call("hello") == "default reply"
    finally:
        await executor.aclose()
    with pytest.raises(StepValidationError, match="needs an instruction or a context"):
        await executor.llm_call("", context={})


async def test_prompts_over_the_size_limit_are_refused(fake, settings):
    executor = TaskExecutor(llm_model="fake-model", settings=settings, max_input_bytes=50)
    executor.task_steps = [{"id": "ask", "instruction": "Summarise:", "retries": 0}]

    with pytest.raises(
        StepValidationError, match=r"prompt is \d+ bytes, over the limit of 50"
    ) as info:
        await executor.execute({"text": "x" * 30})

    assert info.value.task_id == "ask" and fake.requests == []


async def test_observers_and_prices_see_step_and_llm_events(fake, fake_prices_settings):
    seen: list[str] = []

    class Recorder(RunObserver):
        async def on_step_end(self, *, run, step):
            seen.append(f"step:{step.task_id}")

        async def on_llm_call(self, *, run, task_id, call):
            seen.append(f"llm:{task_id}:{call.model}")

    executor = TaskExecutor(
        llm_model="fake-model", settings=fake_prices_settings, observers=[Recorder()]
    )
    executor.task_steps = [{"id": "a", "instruction": "A"}, {"id": "b", "instruction": "B"}]

    result = await executor.execute({})

    assert seen == ["llm:a:fake-model", "step:a", "llm:b:fake-model", "step:b"]
    assert result.totals["cost"] > 0


@pytest.fixture
def fake_prices_settings(fake) -> Settings:
    return Settings.model_validate(
        {
            "providers": [{"name": "fake", "base_url": fake.openai_base_url, "timeout": 5}],
            "default_provider": "fake",
            "prices": {"fake-model": {"input_per_1m": 1000.0, "output_per_1m": 2000.0}},
        }
    )


async def test_a_step_executor_runs_inside_any_chain_via_task_exec():
    executor = Pipeline(False)
    env = taskengine.SimpleEnv(executor)
    chain, _steps = executor.compile()

    out, out_type, _state = await env.exec_env(chain, {"n": 1}, "json")

    assert (
        out["data"] == {"n": 1, "rows": [10, 20, 30], "saved": 3} and out_type.type_name == "json"
    )
    assert json.loads(json.dumps(out))["steps"]["save"] == {"saved": 3}
    assert "step:load" in executor.handler_names and "noop" in executor.handler_names


def test_execute_sync():
    assert Pipeline(False).execute_sync({"k": "v"})["saved"] == 3


def test_the_stored_chain_loads_again_with_the_executors_handler_names():
    executor = Pipeline(False)
    chain, _steps = executor.compile()
    stored = chain.model_dump(mode="json", exclude_none=True)  # what the run store keeps

    loaded = taskengine.load_chain(stored, extra_handlers=executor.handler_names)

    assert loaded == chain
    assert [t.input_var for t in loaded.tasks] == ["input", "load", "transform"]
    assert loaded.retry_policy is not None and loaded.retry_policy.base == "500ms"
    with pytest.raises(ChainValidationError, match="unknown handler 'step:load'"):
        taskengine.load_chain(stored)
