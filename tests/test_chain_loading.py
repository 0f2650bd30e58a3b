"""Loading a chain from each kind of source, its `Duration` fields, and linting it only once."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from taskengine.chain import (
    Duration,
    TaskChainDefinition,
    lint_once,
    load_chain,
    load_chain_dict,
    load_chain_file,
    load_chain_text,
    parse_duration,
    passed_lint,
)
from taskengine.chain import lint as lint_module
from taskengine.errors import ChainValidationError

CHAIN = {
    "id": "c",
    "retry_policy": {"base": "250ms"},
    "tasks": [{"id": "a", "handler": "noop", "timeout": "1m30s"}],
}


def test_each_kind_of_source_loads_the_same_definition(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CHAIN))
    loaded = [
        load_chain_file(path),
        load_chain_text(json.dumps(CHAIN)),
        load_chain_text(yaml.safe_dump(CHAIN)),
        load_chain_dict(CHAIN),
        load_chain(str(path)),
    ]
    assert all(chain == loaded[0] for chain in loaded)


def test_a_file_without_an_id_takes_its_name(tmp_path):
    path = tmp_path / "triage.yaml"
    path.write_text(yaml.safe_dump({"tasks": CHAIN["tasks"]}))
    assert load_chain_file(path).id == "triage"


def test_duration_fields_keep_their_text_and_know_their_seconds():
    chain = load_chain_dict(CHAIN)
    timeout, policy = chain.tasks[0].timeout, chain.retry_policy
    assert isinstance(timeout, Duration) and timeout == "1m30s" and timeout.seconds == 90.0
    assert policy.base.seconds == 0.25 and policy.max.seconds == 10.0
    assert parse_duration(timeout) == 90.0
    assert chain.dump()["tasks"][0]["timeout"] == "1m30s"
    assert yaml.safe_dump(chain.model_dump()).count("1m30s") == 1


def test_a_bad_duration_is_a_lint_problem_not_a_schema_error():
    bad = {"id": "c", "tasks": [{"id": "a", "handler": "noop", "timeout": "soon"}]}
    with pytest.raises(ChainValidationError, match="invalid duration 'soon'"):
        load_chain_dict(bad)


def test_a_definition_is_linted_once(monkeypatch):
    from taskengine.engine import SimpleEnv

    runs = []
    real_run = lint_module._Linter.run
    monkeypatch.setattr(lint_module._Linter, "run", lambda self: runs.append(1) or real_run(self))
    chain = load_chain_dict(CHAIN)
    assert passed_lint(chain) and passed_lint(chain, ["step:x"])
    assert lint_once(chain) is chain and load_chain(chain) is chain
    asyncio.run(SimpleEnv().exec_env(chain, "x"))
    assert len(runs) == 1


def test_a_copy_or_an_unchecked_definition_is_linted_again():
    chain = load_chain_dict(CHAIN)
    assert not passed_lint(chain.model_copy())
    fresh = TaskChainDefinition.model_validate(CHAIN)
    assert not passed_lint(fresh)
    bad = TaskChainDefinition.model_validate({"id": "c", "tasks": [{"id": "a", "handler": "nope"}]})
    for _ in range(2):
        with pytest.raises(ChainValidationError, match="unknown handler"):
            lint_once(bad)
    assert not passed_lint(bad)
