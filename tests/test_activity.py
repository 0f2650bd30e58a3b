"""Activity tracking: the lifecycle, every query of seed 004, bounds, redaction, failure tolerance."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskengine.activity import (
    ActivityHandle,
    ActivityObserver,
    KVActivitySink,
    NoopTracker,
    Operation,
    Redactor,
    TrackedEvent,
    TrackedRequest,
    current_request_id,
    redact,
    redact_values,
    use_request_id,
)
from taskengine.datatypes import DataType, to_display, to_jsonable
from taskengine.engine.events import RunInfo
from taskengine.engine.record import CapturedStateUnit
from taskengine.errors import RaisedError, StoreError
from taskengine.kv import MemoryKV, open_kv


@pytest.fixture
async def memory_sink():
    sink = KVActivitySink(MemoryKV(), redactor=Redactor())
    yield sink
    await sink.aclose()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def sink(request, tmp_path):
    """A sink on each KV backend (Redis under a unique namespace, cleared afterwards)."""
    if request.param == "memory":
        kv = await open_kv("memory://")
    elif request.param == "sqlite":
        kv = await open_kv(f"sqlite:///{tmp_path}/activity.db")
    else:
        kv = await open_kv(
            request.getfixturevalue("redis_url"), namespace=f"te-act-{uuid.uuid4().hex}:"
        )
    sink = KVActivitySink(kv, redactor=Redactor())
    try:
        yield sink
    finally:
        await sink.aclose()
        if request.param == "redis":
            await kv.clear()
        await kv.aclose()


def step(task_id: str, output: str = "ok", **extra) -> CapturedStateUnit:
    return CapturedStateUnit(
        task_id=task_id,
        task_handler="noop",
        input_type=DataType.STRING,
        output_type=DataType.STRING,
        transition="next",
        duration_ns=1_500_000,
        input="in",
        output=output,
        input_var="input",
        **extra,
    )


class BrokenKV(MemoryKV):
    """A KV whose writes fail the way a dead server does (single-module unit test double)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def _run_batch(self, ops):
        if self.broken:
            raise StoreError("Redis KV at redis://127.0.0.1:6379: Connection refused")
        return await super()._run_batch(ops)


# --- lifecycle ---------------------------------------------------------------------------


async def test_async_activity_records_one_event(memory_sink):
    async with memory_sink.start(
        "exec_chain", "triage", request_id="req-1", user="ada", tries=2
    ) as act:
        act.report_change("ticket-7", {"priority": "high"})
    [event] = await memory_sink.get_activity_logs(10)
    assert isinstance(event, TrackedEvent)
    assert (event.operation, event.subject, event.request_id) == ("exec_chain", "triage", "req-1")
    assert event.metadata == {"user": "ada", "tries": "2"}
    assert event.entity_id == "ticket-7" and event.entity_data == {"priority": "high"}
    assert event.error is None
    assert event.end is not None and event.end >= event.start
    assert event.duration_ms >= 0
    as_json = event.to_dict()
    assert as_json["requestID"] == "req-1" and as_json["entityID"] == "ticket-7"
    assert as_json["start"].endswith("Z") and "duration" in as_json
    assert TrackedEvent.from_dict(as_json) == event


async def test_an_escaping_exception_is_the_error_and_still_raised(memory_sink):
    with pytest.raises(RaisedError):
        async with memory_sink.start("hook", "slack"):
            raise RaisedError("boom")
    with pytest.raises(KeyError), memory_sink.start("hook", "email"):
        raise KeyError("nope")
    await memory_sink.flush()
    newest, older = await memory_sink.get_activity_logs(10)
    assert newest.subject == "email" and newest.error == "'nope'"
    assert older.subject == "slack" and older.error == "boom"


async def test_reported_error_wins_over_the_escaping_one(memory_sink):
    with pytest.raises(ValueError):
        async with memory_sink.start("op", "s") as act:
            act.report_error("first cause")
            raise ValueError("later")
    [event] = await memory_sink.get_activity_logs(1)
    assert event.error == "first cause"


async def test_sync_with_inside_a_loop_writes_in_the_background(memory_sink):
    with memory_sink.start("parse", "input", request_id="r") as act:
        act.report_change("x", 1)
    await memory_sink.flush()
    [event] = await memory_sink.get_activity_logs_by_request_id("r")
    assert event.entity_data == 1


def test_sync_with_without_a_loop_writes_inline():
    kv = MemoryKV()
    sink = KVActivitySink(kv)
    with sink.start("cli", "validate", request_id="r1"):
        pass
    handle = sink.start("cli", "run")
    handle.end()
    handle.end()  # ending twice writes once
    events = asyncio.run(sink.get_activity_logs(0))
    assert [e.subject for e in events] == ["run", "validate"]


def test_sync_without_a_loop_on_a_network_store_is_logged_not_raised(caplog):
    class SuspendingKV(MemoryKV):
        async def _run_batch(self, ops):
            await asyncio.sleep(0)  # a real network store suspends here
            return await super()._run_batch(ops)

    sink = KVActivitySink(SuspendingKV())
    with caplog.at_level(logging.WARNING, logger="taskengine.activity"), sink.start("cli", "run"):
        pass
    assert "needs a local KV" in caplog.text


async def test_request_id_comes_from_the_context(memory_sink):
    assert current_request_id.get() is None
    with use_request_id("ctx-req"):
        async with memory_sink.start("route", "POST /tasks"):
            pass
    assert current_request_id.get() is None
    [event] = await memory_sink.get_activity_logs_by_request_id("ctx-req")
    assert event.subject == "POST /tasks"


async def test_noop_tracker_does_nothing_in_every_form():
    tracker = NoopTracker()
    with tracker.start("op", "s", request_id="x") as act:
        act.report_error("e")
        act.report_change("id", {"a": 1})
        act.add_metadata(k="v")
    async with tracker.start("op", "s") as act:
        await act.aend()
    with pytest.raises(RuntimeError), tracker.start("op", "s"):
        raise RuntimeError("passes through")
    assert isinstance(act, ActivityHandle)


# --- queries (all backends) --------------------------------------------------------------


async def test_every_query_of_the_seed(sink):
    for rid, subject in [("r1", "triage"), ("r2", "triage"), ("r1", "triage"), ("r3", "summarize")]:
        async with sink.start("exec_chain", subject, request_id=rid):
            pass
    async with sink.start("hook", "slack"):  # no request id
        pass
    await sink.record_state("r2", step("first"))
    await sink.record_state("r2", step("second", error="bad"))
    await sink.record_state("r3", step("only"))

    logs = await sink.get_activity_logs(3)
    assert [e.subject for e in logs] == ["slack", "summarize", "triage"]
    assert len(await sink.get_activity_logs(0)) == 5

    r1 = await sink.get_activity_logs_by_request_id("r1")
    assert len(r1) == 2 and r1[0].start <= r1[1].start
    assert await sink.get_activity_logs_by_request_id("unknown") == []

    states = await sink.get_execution_state_by_request_id("r2")
    assert [s.task_id for s in states] == ["first", "second"]
    assert states[1].error == "bad" and states[0].input_type is DataType.STRING
    assert states[0].duration_ms == 1.5

    assert await sink.get_known_operations() == [
        Operation("exec_chain", "summarize"),
        Operation("exec_chain", "triage"),
        Operation("hook", "slack"),
    ]
    assert await sink.get_recent_request_ids(10) == [
        TrackedRequest("r3"),
        TrackedRequest("r2"),
        TrackedRequest("r1"),
    ]
    assert await sink.get_recent_request_ids(1) == [TrackedRequest("r3")]
    by_op = await sink.get_request_id_by_operation(Operation("exec_chain", "triage"))
    assert [r.id for r in by_op] == ["r1", "r2"]
    assert await sink.get_request_id_by_operation(Operation("nothing", "here")) == []
    assert await sink.get_stateful_requests() == ["r3", "r2"]
    assert Operation("a", "b").to_dict() == {"operation": "a", "subject": "b"}
    assert TrackedRequest("x").to_dict() == {"id": "x"}


async def test_the_log_is_bounded(sink):
    sink.max_events = 5
    for i in range(12):
        async with sink.start("op", f"s{i}"):
            pass
    logs = await sink.get_activity_logs(0)
    assert [e.subject for e in logs] == [f"s{i}" for i in range(11, 6, -1)]
    assert await sink.kv.llen("activity:events") == 5


async def test_per_request_lists_and_request_index_are_bounded():
    kv = MemoryKV()
    sink = KVActivitySink(kv, max_requests=10, max_events_per_request=3, max_states_per_request=2)
    for i in range(5):
        async with sink.start("op", "s", request_id="busy", n=i):
            pass
        await sink.record_state("busy", step(f"t{i}"))
    events = await sink.get_activity_logs_by_request_id("busy")
    assert [e.metadata["n"] for e in events] == ["2", "3", "4"]
    assert [s.task_id for s in await sink.get_execution_state_by_request_id("busy")] == ["t3", "t4"]

    for i in range(40):
        async with sink.start("op", "s", request_id=f"req-{i}"):
            pass
        await sink.record_state(f"req-{i}", step("t"))
    recent = await sink.get_recent_request_ids(0)
    assert [r.id for r in recent] == [f"req-{i}" for i in range(39, 29, -1)]
    # Keys of requests that fell out of the index are gone, within the pruning slack.
    assert len(await kv.keys("activity:request:")) <= 11
    assert len(await kv.keys("activity:state:")) <= 11
    assert await sink.get_activity_logs_by_request_id("req-0") == []
    assert await sink.get_execution_state_by_request_id("busy") == []
    assert len(await sink.get_stateful_requests()) <= 11


# --- redaction ---------------------------------------------------------------------------


async def test_secrets_never_reach_the_store():
    kv = MemoryKV()
    red = Redactor()
    sink = KVActivitySink(kv, redactor=red)
    sink.redact_values({"hdr-value-123", "sk-live-abcdef"})
    async with sink.start(
        "hook", "crm", request_id="r", api_key="k-1", Authorization="Bearer t-9", model="gpt"
    ) as act:
        act.report_change(
            "c1",
            {"headers": {"X-Api-Key": "k-2", "accept": "json"}, "note": "sent with hdr-value-123",
             "nested": [{"password": "pw"}, {"accessToken": "tok"}], "input_tokens": 12},
        )  # fmt: skip
        act.report_error("401 from crm using sk-live-abcdef; Authorization: Bearer abcdefgh")
    await sink.record_state(
        "r", step("call", output="key sk-live-abcdef", meta={"client_secret": "cs"})
    )

    [event] = await sink.get_activity_logs(1)
    assert event.metadata == {"api_key": "***", "Authorization": "***", "model": "gpt"}
    assert event.entity_data == {
        "headers": {"X-Api-Key": "***", "accept": "json"},
        "note": "sent with ***",
        "nested": [{"password": "***"}, {"accessToken": "***"}],
        "input_tokens": 12,
    }
    assert event.error == "401 from crm using ***; Authorization: Bearer ***"
    [state] = await sink.get_execution_state_by_request_id("r")
    assert state.output == "key ***" and state.meta == {"client_secret": "***"}

    stored = b""
    for key in await kv.keys():
        is_set = key in ("activity:operations", "activity:stateful")
        stored += b"".join(await kv.smembers(key) if is_set else await kv.lrange(key, 0, -1))
    assert b"sent with ***" in stored
    for secret in (
        b"k-1",
        b"t-9",
        b"k-2",
        b"hdr-value-123",
        b'pw"',
        b'tok"',
        b"sk-live",
        b"abcdefgh",
        b'cs"',
    ):
        assert secret not in stored


def test_nested_metadata_is_masked_and_plain_prose_is_left_alone():
    red = Redactor()
    meta = red.metadata(
        {"headers": {"Authorization": "Basic dXNlcjpwYXNz", "accept": "json"}, "n": 3}
    )
    assert meta == {"headers": '{"Authorization":"***","accept":"json"}', "n": "3"}
    prose = "This is basic information about a bearer bond and tokens."
    assert red.text(prose) == prose


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.sampled_from(["plain", "sent with k-secret-1", "Bearer abcdefgh12345", "903175313"]),
    st.text(max_size=12),
    st.datetimes(timezones=st.just(UTC)),
    st.builds(CapturedStateUnit, task_id=st.text(max_size=5), task_handler=st.just("noop")),
)
_keys = st.one_of(
    st.sampled_from(["api_key", "Authorization", "pin", "inputTokens", "k-secret-1", "n"]),
    st.text(max_size=8),
    st.integers(0, 9),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_values, by_key_name=st.booleans())
def test_redact_in_one_walk_matches_jsonable_then_masked(value, by_key_name):
    """`redact` walks once; it must give what `value(to_jsonable(…))` gives (its definition)."""
    red = Redactor(["k-secret-1", 903175313], by_key_name=by_key_name)
    red.add({"pin": 1234567}, injected=True)
    assert red.redact(value) == red.value(to_jsonable(value))
    meta = {"a": value, "api_key": value, 7: value}
    assert red.metadata(meta) == {
        str(k): "***" if red._masks_key(str(k), by_key_name) else to_display(red.redact(v))
        for k, v in meta.items()
    }


def test_module_level_redaction_registry():
    value = f"inject-{uuid.uuid4().hex}"
    redact_values({value, "ab"})  # "ab" is too short to register: it would mangle text
    assert redact({"h": f"x {value} y", "t": "ab"}) == {"h": "x *** y", "t": "ab"}


# --- failure tolerance -------------------------------------------------------------------


async def test_a_dead_kv_never_fails_the_caller(caplog):
    kv = BrokenKV()
    sink = KVActivitySink(kv)
    with caplog.at_level(logging.DEBUG, logger="taskengine.activity"):
        for _ in range(3):
            async with sink.start("op", "s", request_id="r"):
                pass
        with sink.start("op", "sync"):
            pass
        await sink.flush()
        await sink.record_state("r", step("t"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Connection refused" in warnings[0].getMessage()
    assert any(r.levelno == logging.DEBUG for r in caplog.records)

    kv.broken = False
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="taskengine.activity"):
        async with sink.start("op", "back"):
            pass
    assert "recovered" in caplog.text
    assert [e.subject for e in await sink.get_activity_logs(10)] == ["back"]
    # The request seen while the store was down is listed once it is back.
    async with sink.start("op", "s", request_id="r"):
        pass
    assert await sink.get_recent_request_ids(10) == [TrackedRequest("r")]


async def test_unserializable_entity_data_is_logged(memory_sink, caplog):
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("cannot render")

    with caplog.at_level(logging.WARNING, logger="taskengine.activity"):
        async with memory_sink.start("op", "s") as act:
            act.report_change("x", Hostile())
    assert "cannot render" in caplog.text
    assert await memory_sink.get_activity_logs(10) == []


async def test_queries_on_a_dead_kv_raise_store_error():
    kv = await open_kv("redis://127.0.0.1:1/0", namespace="x:")
    sink = KVActivitySink(kv)
    try:
        with pytest.raises(StoreError):
            await sink.get_activity_logs(10)
    finally:
        await kv.aclose()


# --- the run observer --------------------------------------------------------------------


async def test_observer_turns_run_events_into_activity(sink):
    observer = ActivityObserver(sink)
    run = RunInfo(run_id="run-1", chain_id="triage", request_id="http-9")
    await observer.on_run_start(run=run, input="hi", input_type=DataType.STRING)
    await observer.on_step_end(run=run, step=step("classify", output="bug"))
    await observer.on_step_end(run=run, step=step("route", output="team-a"))
    await observer.on_run_end(
        run=run, status="succeeded", output="team-a", output_type=DataType.STRING, error=None
    )

    [event] = await sink.get_activity_logs_by_request_id("http-9")
    assert (event.operation, event.subject, event.error) == ("exec_chain", "triage", None)
    assert event.entity_id == "run-1"
    assert event.entity_data == {"status": "succeeded", "outputType": "string", "output": "team-a"}
    assert event.metadata["status"] == "succeeded" and event.metadata["input_type"] == "string"
    assert event.duration_ms >= 0
    states = await sink.get_execution_state_by_request_id("http-9")
    assert [s.task_id for s in states] == ["classify", "route"]
    assert await sink.get_stateful_requests() == ["http-9"]
    assert await sink.get_request_id_by_operation(Operation("exec_chain", "triage")) == [
        TrackedRequest("http-9")
    ]


async def test_observer_reports_a_failed_run_under_its_run_id(memory_sink):
    observer = ActivityObserver(memory_sink)
    run = RunInfo(run_id="run-2", chain_id="triage")
    await observer.on_run_start(run=run, input="x", input_type=DataType.STRING)
    await observer.on_step_end(run=run, step=step("classify", error="unparseable"))
    err = RaisedError("stop here", task_id="classify")
    await observer.on_error(run=run, task_id="classify", error=err)
    await observer.on_run_end(
        run=run, status="failed", output=None, output_type=DataType.NIL, error=err
    )
    [event] = await memory_sink.get_activity_logs_by_request_id("run-2")
    assert event.error == "task 'classify': stop here"
    assert event.metadata["failed_task"] == "classify" and event.metadata["status"] == "failed"
    assert [s.error for s in await memory_sink.get_execution_state_by_request_id("run-2")] == [
        "unparseable"
    ]


async def test_observer_on_a_dead_kv_lets_the_run_go_on():
    observer = ActivityObserver(KVActivitySink(BrokenKV()))
    run = RunInfo(run_id="run-3", chain_id="c")
    await observer.on_run_start(run=run, input="x", input_type=DataType.STRING)
    await observer.on_step_end(run=run, step=step("t"))
    await observer.on_error(run=run, task_id=None, error=RuntimeError("x"))
    await observer.on_run_end(
        run=run, status="failed", output=None, output_type=DataType.NIL, error=None
    )
    # Ending a run the observer never saw start still records it.
    late = RunInfo(run_id="run-4", chain_id="c")
    await observer.on_run_end(
        run=late, status="succeeded", output="y", output_type=DataType.STRING, error=None
    )
    assert observer._spans == {}


async def test_observer_clips_long_outputs(memory_sink):
    observer = ActivityObserver(memory_sink, max_output_chars=10)
    run = RunInfo(run_id="run-5", chain_id="c")
    await observer.on_run_start(run=run, input="x", input_type=DataType.STRING)
    await observer.on_run_end(
        run=run, status="succeeded", output="z" * 50, output_type=DataType.STRING, error=None
    )
    [event] = await memory_sink.get_activity_logs(1)
    assert event.entity_data["output"] == "z" * 10 + "…"
