import json

import pytest
from pydantic import ValidationError

from taskengine.chain import chain_json_schema, load_chain, parse_chain, parse_duration
from taskengine.errors import ChainLoadError, ChainValidationError


def minimal(**task):
    base = {
        "id": "a",
        "handler": "noop",
        "transition": {"branches": [{"operator": "default", "goto": "end"}]},
    }
    base.update(task)
    return {"id": "c", "tasks": [base]}


def test_loads_yaml_text_json_text_dict_and_file(tmp_path):
    as_dict = minimal()
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(as_dict))
    yaml_text = "id: c\ntasks:\n  - id: a\n    handler: noop\n"
    for source in (as_dict, json.dumps(as_dict), yaml_text, str(path), path):
        chain = load_chain(source)
        assert chain.id == "c"
        assert chain.tasks[0].handler == "noop"


def test_definition_is_frozen():
    chain = load_chain(minimal())
    with pytest.raises(ValidationError):
        chain.tasks[0].handler = "raw_string"  # type: ignore[misc]


def test_typo_gets_did_you_mean_with_task_and_path():
    with pytest.raises(ChainValidationError) as info:
        load_chain(minimal(prompt_templte="hi"))
    problem = info.value.problems[0]
    assert problem.task_id == "a"
    assert problem.path == "prompt_templte"
    assert "did you mean 'prompt_template'" in problem.message


def test_camel_case_system_instruction_is_rejected_not_ignored():
    with pytest.raises(ChainValidationError) as info:
        load_chain(minimal(systemInstruction="be brief"))
    assert "did you mean 'system_instruction'" in str(info.value)


def test_nested_unknown_key_names_its_path():
    chain = minimal(transition={"branches": [{"operator": "default", "goto": "end", "gotoo": "x"}]})
    _, problems = parse_chain(chain)
    assert problems[0].path == "transition.branches[0].gotoo"
    assert "did you mean 'goto'" in problems[0].message


def test_wrong_type_names_field():
    _, problems = parse_chain(minimal(retry_on_failure="many"))
    assert problems[0].path == "retry_on_failure"
    assert problems[0].task_id == "a"


def test_malformed_yaml_and_json_say_where():
    with pytest.raises(ChainLoadError, match="invalid YAML at line 3"):
        load_chain("id: c\ntasks: [\n  - : :\n")
    with pytest.raises(ChainLoadError, match="invalid JSON"):
        load_chain('{"id": "c", "tasks": [}')
    with pytest.raises(ChainLoadError, match="not found"):
        load_chain("missing-file.yaml")
    with pytest.raises(ChainLoadError, match="expected a mapping"):
        load_chain("- just\n- a list\n")


def test_chain_id_defaults_to_file_stem(tmp_path):
    path = tmp_path / "my-chain.yaml"
    path.write_text("tasks:\n  - id: a\n    handler: noop\n")
    assert load_chain(path).id == "my-chain"


def test_hook_args_become_strings():
    chain = load_chain(
        minimal(handler="hook", hook={"name": "h", "args": {"n": 3, "flag": True, "d": {"a": 1}}})
    )
    assert chain.tasks[0].hook.args == {"n": "3", "flag": "true", "d": '{"a": 1}'}


def test_candidates_dedupe_in_order():
    chain = load_chain(
        minimal(
            handler="raw_string",
            prompt_template="x",
            execute_config={"model": "a", "models": ["b", "a"], "providers": ["p1"]},
        )
    )
    cfg = chain.tasks[0].execute_config
    assert cfg.candidate_models() == ["a", "b"]
    assert cfg.candidate_providers() == ["p1"]


def test_json_schema_covers_every_field():
    schema = chain_json_schema()
    task = schema["$defs"]["TaskDefinition"]["properties"]
    for key in (
        "prompt_template",
        "valid_conditions",
        "execute_config",
        "input_var",
        "retry_on_failure",
        "compose",
        "hook",
        "output_template",
        "timeout",
        "print",
        "system_instruction",
    ):
        assert key in task
    assert schema["$defs"]["TaskDefinition"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("2m", 120), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400), ("0", 0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "ten seconds", "5d", "1h-3m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_chain_exported_by_go_loads():
    """Go's json.Marshal writes unset slices/maps as null; YAML may give numeric ids."""
    go_json = {
        "id": "go",
        "debug": False,
        "description": "",
        "token_limit": 0,
        "tasks": [
            {
                "id": 5,
                "description": "",
                "handler": "hook",
                "system_instruction": "",
                "valid_conditions": None,
                "execute_config": None,
                "print": "",
                "prompt_template": "",
                "hook": {"name": "echo", "tool_name": "", "args": None},
                "output_template": "",
                "input_var": "",
                "compose": None,
                "timeout": "",
                "retry_on_failure": 0,
                "transition": {"on_failure": "", "branches": None},
            }
        ],
    }
    chain = load_chain(go_json)
    assert chain.tasks[0].id == "5"
    assert chain.tasks[0].hook.args == {}
    assert chain.tasks[0].transition.branches == []


def test_mermaid_ids_stay_unique():
    from taskengine.chain.mermaid import to_mermaid

    chain = load_chain(
        {
            "id": "g",
            "tasks": [
                {
                    "id": "a-b",
                    "handler": "noop",
                    "transition": {"branches": [{"operator": "default", "goto": "a_b"}]},
                },
                {"id": "a_b", "handler": "noop"},
            ],
        }
    )
    text = to_mermaid(chain)
    node_lines = [line for line in text.splitlines() if "<br/>" in line]
    assert len({line.split("[")[0] for line in node_lines}) == 2


def test_stored_form_is_the_dump_built_once_per_object():
    from taskengine.chain import load_chain

    chain = load_chain(
        {"id": "c", "tasks": [{"id": "a", "handler": "noop", "transition": {"branches": []}}]}
    )
    stored = chain.stored_form()
    assert stored == chain.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    assert chain.stored_form() is stored  # built once: the model is frozen
    renamed = chain.model_copy(update={"id": "d"})  # shares private attributes with `chain`
    assert renamed.stored_form()["id"] == "d"
    assert chain.stored_form() is stored and stored["id"] == "c"
