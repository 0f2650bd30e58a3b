"""Issue 14: property-based fuzzing of chain documents and request bodies against a real server.

Whatever a client sends, the server answers (no unhandled exception, no 500), within a time
bound, and a rejection says where the problem is: a `field`, a lint problem's `path`, or for a
run the chain's own logic stopped, the task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import LiveServer, make_settings

#: seconds one request may take, whatever it holds
CASE_BOUND = 5.0
HANDLERS = ["noop", "raw_string", "condition_key", "parse_number", "raise_error", "hook", "bogus"]
OPERATORS = ["default", "equals", "contains", "gt", "lt", "in_range", "starts_with", "??"]
HOSTILE_TEXT = [
    "{{ printf \"%0999999999d\" 1 }}", '{{ "%0999999999d" % 1 }}', "{" * 500,
    '{{ "{:099999999}".format(1) }}', "{{ input }}", "{{ .input }}", "{% for x in range(99999999) %}x{% endfor %}",
    "\ud800", "a" * 5000, "{{ ((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))) }}",
    "{{ 'x' * 999999999 }}", "{{ 9 ** 99999 }}", "{{ input.__class__ }}", "%s%s%s", "",
]  # fmt: skip

text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def chains(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    ids = [draw(st.sampled_from(["a", "b", "c", "d", "\ud800", "x" * 300])) for _ in range(count)]
    tasks = []
    for task_id in ids:
        task: dict[str, Any] = {"id": task_id, "handler": draw(st.sampled_from(HANDLERS))}
        if draw(st.booleans()):
            task["prompt_template"] = draw(text)
        if draw(st.booleans()):
            task["valid_conditions"] = {draw(text): True}
        branches = [
            {"operator": draw(st.sampled_from(OPERATORS)), "when": draw(text),
             "goto": draw(st.sampled_from([*ids, "end", "nowhere"]))}
            for _ in range(draw(st.integers(0, 3)))
        ]  # fmt: skip
        task["transition"] = {"branches": branches}
        if draw(st.booleans()):
            task[draw(st.sampled_from(["timeout", "retry_on_failure", "input_var", "junk"]))] = (
                draw(json_values)
            )
        tasks.append(task)
    chain: dict[str, Any] = {"id": draw(text), "tasks": tasks}
    if draw(st.booleans()):
        chain["max_steps"] = draw(st.integers(-5, 10**12))
    return chain


request_bodies = st.one_of(
    st.fixed_dictionaries(
        {"input": json_values, "chain": chains()},
        optional={
            "inputType": st.sampled_from(["string", "int", "json", "chat", "??"]),
            "breakpoints": st.lists(text, max_size=2),
        },
    ),
    st.fixed_dictionaries({"input": json_values, "chain": text}),
    json_values,
)


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    from taskengine.server import create_app

    settings_ = make_settings(
        tmp_path_factory.mktemp("fuzz"), None,
        limits={"run_timeout": 3, "max_steps_cap": 200},
    )  # fmt: skip
    server = LiveServer(create_app(settings_, environ={})).start()
    try:
        yield server.url
    finally:
        server.stop()


def _names_where(status: int, body: dict[str, Any]) -> bool:
    error = body.get("error") or {}
    if error.get("field") or any(p.get("path") for p in error.get("problems", []) or []):
        return True
    if error.get("code") == "invalid_json" or status in (404, 413):
        return True  # the body as a whole, or the thing looked up
    return bool(body.get("runId") and error.get("task_id"))


def _check(client: httpx.Client, raw: bytes, path: str = "/tasks") -> None:
    started = time.monotonic()
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    elapsed = time.monotonic() - started
    assert response.status_code < 500 or response.status_code in (502, 504), response.text[:500]
    assert elapsed < CASE_BOUND, f"{elapsed:.1f} s for {raw[:200]!r}"
    if 400 <= response.status_code < 500:
        assert _names_where(response.status_code, response.json()), response.text[:500]


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(body=request_bodies)
def test_fuzzed_requests_never_crash_or_stall_the_server(fuzz_server: str, body: Any) -> None:
    raw = json.dumps(body).encode("utf-8", "surrogatepass")
    with httpx.Client(base_url=fuzz_server, timeout=30) as client:
        _check(client, raw)
        assert client.get("/health").status_code == 200


def test_fuzz_helper_rejects_a_nameless_rejection() -> None:
    assert not _names_where(400, {"error": {"message": "bad", "code": "x"}})
    assert _names_where(400, {"error": {"message": "bad", "field": "input"}})


ROUTES = ["/taskchains", "/hooks/remote", "/execute", "/embed",
          "/openai/spin/v1/chat/completions"]  # fmt: skip
chat_bodies = st.fixed_dictionaries(
    {"model": text, "messages": st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "tool", "??"]),
                               "content": json_values}), max_size=3)},
    optional={"stream": st.booleans(), "tools": json_values, "temperature": json_values},
)  # fmt: skip


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(path=st.sampled_from(ROUTES), body=st.one_of(json_values, chains(), chat_bodies))
def test_fuzzed_bodies_on_other_routes(fuzz_server: str, path: str, body: Any) -> None:
    raw = json.dumps(body).encode("utf-8", "surrogatepass")
    with httpx.Client(base_url=fuzz_server, timeout=30) as client:
        _check(client, raw, path)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(document=st.one_of(chains(), json_values, text))
def test_fuzzed_chain_documents_load_or_fail_cleanly(document: Any) -> None:
    from taskengine.chain import load_chain
    from taskengine.errors import TaskEngineError

    started = time.monotonic()
    try:
        load_chain(document if isinstance(document, dict | str) else json.dumps(document))
    except TaskEngineError as exc:
        assert exc.field or getattr(exc, "problems", None) or "chain" in str(exc), str(exc)
        assert len(str(exc)) < 20_000
    assert time.monotonic() - started < CASE_BOUND
