"""Issue 14, item 9: the OpenAPI document declares every status each route answers.

A bounded schemathesis run (all checks) against a real uvicorn server: generated requests,
valid and invalid, must get documented statuses in the documented error shape, and never 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, LiveServer, make_settings

schemathesis = pytest.importorskip("schemathesis")

#: Every check but one: "schema-valid data is accepted" cannot hold where a body's schema is a
#: free-form chain document (any object matches it; lint then rejects most with 400/422).
EXCLUDED = [schemathesis.checks.positive_data_acceptance]
#: examples per operation; about 30 operations, so a few hundred requests in all
EXAMPLES = 12


def test_every_route_declares_its_error_statuses(
    tmp_path: Path, fake_llm: FakeLLMServer, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server(make_settings(tmp_path, fake_llm, api_token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    document = httpx.get(f"{server.url}/openapi.json", headers=auth).json()
    tasks = document["paths"]["/tasks"]["post"]["responses"]
    assert {"400", "401", "413", "422", "429", "502", "504"} <= set(tasks)
    assert tasks["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


@pytest.mark.slow
def test_schemathesis_finds_no_undocumented_status_or_server_error(
    tmp_path: Path, fake_llm: FakeLLMServer, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server(make_settings(tmp_path, fake_llm, api_token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    document = httpx.get(f"{server.url}/openapi.json", headers=auth).json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def exercise(case) -> None:
            nonlocal checked
            response = case.call(base_url=server.url, headers=auth, timeout=10)
            checked += 1
            try:
                case.validate_response(response, headers=auth, excluded_checks=EXCLUDED)
            except Exception as exc:  # collected, so one run reports every operation
                lines = [line for line in str(exc).splitlines() if line.strip()][:6]
                failures.append(f"{case.operation.label}: {' | '.join(lines)[:400]}")
                raise

        with contextlib.suppress(Exception):
            exercise()
    assert checked > 100
    assert not failures, "\n".join(sorted(set(failures))[:20])
