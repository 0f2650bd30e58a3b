from taskengine.chain import parse_chain


def problems_of(chain):
    _, problems = parse_chain(chain)
    return [(p.severity, p.task_id, p.path, p.message) for p in problems]


def default(goto="end"):
    return {"branches": [{"operator": "default", "goto": goto}]}


def test_empty_chain():
    assert problems_of({"id": "c", "tasks": []})[0][3] == "chain has no tasks"


def test_reports_every_problem_at_once():
    chain = {
        "id": "c",
        "tasks": [
            {
                "id": "a",
                "handler": "condition_key",
                "prompt_template": "{{ .input }}",
                "timeout": "soon",
                "transition": {
                    "on_failure": "nowhere",
                    "branches": [
                        {"operator": "in_range", "when": "7", "goto": "b"},
                        {"operator": "bigger", "when": "1", "goto": "b"},
                        {"operator": ">", "when": "many", "goto": "b"},
                    ],
                },
            },
            {"id": "a", "handler": "hook", "transition": default()},
            {"id": "end", "handler": "noop", "transition": default()},
            {"id": "", "handler": "noop", "transition": default()},
            {"id": "lonely", "handler": "parse_numbr", "transition": default("ghost")},
        ],
    }
    found = problems_of(chain)
    text = "\n".join(f"{s} {t} {p} {m}" for s, t, p, m in found)
    assert "condition_key tasks need valid_conditions" in text
    assert "a timeout invalid duration 'soon'" in text
    assert "transition.on_failure unknown task 'nowhere'" in text
    assert "in_range needs 'a-b'" in text
    assert "unknown operator 'bigger'" in text
    assert "operator '>' needs a number" in text
    assert "duplicate task id 'a'" in text
    assert "hook tasks need a hook" in text
    assert "'end' is reserved" in text
    assert "empty id" in text
    assert "unknown handler 'parse_numbr' (did you mean 'parse_number'?)" in text
    assert "transition.branches[0].goto unknown task 'ghost'" in text
    assert ("warning", "lonely", None, "unreachable: no branch or on_failure leads here") in found


def test_template_variable_typo_is_an_error():
    found = problems_of(
        {
            "id": "c",
            "tasks": [
                {
                    "id": "a",
                    "handler": "noop",
                    "prompt_template": "{{ .inptu }}",
                    "transition": default(),
                }
            ],
        }
    )
    assert found[0][:3] == ("error", "a", "prompt_template")
    assert "did you mean 'input'" in found[0][3]


def test_template_syntax_error():
    found = problems_of(
        {
            "id": "c",
            "tasks": [
                {"id": "a", "handler": "noop", "print": "{{ input ", "transition": default()}
            ],
        }
    )
    assert found[0][:3] == ("error", "a", "print")


def test_condition_branch_outside_valid_conditions_warns():
    found = problems_of(
        {
            "id": "c",
            "tasks": [
                {
                    "id": "a",
                    "handler": "condition_key",
                    "prompt_template": "x",
                    "valid_conditions": {"yes": True, "no": False},
                    "transition": {
                        "branches": [{"operator": "equals", "when": "maybe", "goto": "end"}]
                    },
                }
            ],
        }
    )
    assert any(s == "warning" and "can never match" in m for s, _, _, m in found)


def test_unknown_input_var_and_compose():
    found = problems_of(
        {
            "id": "c",
            "tasks": [
                {
                    "id": "a",
                    "handler": "noop",
                    "input_var": "inptu",
                    "compose": {"with_var": "zzz", "strategy": "mix"},
                    "transition": default(),
                }
            ],
        }
    )
    paths = {p for _, _, p, _ in found}
    assert {"input_var", "compose.with_var", "compose.strategy"} <= paths


def test_clean_chain_has_no_errors():
    found = problems_of(
        {
            "id": "c",
            "tasks": [
                {"id": "a", "handler": "noop", "transition": default("b")},
                {
                    "id": "b",
                    "handler": "noop",
                    "input_var": "a",
                    "prompt_template": "{{ .a }} {{ b_composed }}",
                    "compose": {"with_var": "input"},
                    "transition": default(),
                },
            ],
        }
    )
    assert [f for f in found if f[0] == "error"] == []


def test_schema_and_lint_problems_are_reported_together():
    found = problems_of(
        {
            "id": "c",
            "tasks": [
                {"id": "a", "handler": "noop", "prompt_templte": "x", "transition": default("b")},
                {
                    "id": "b",
                    "handler": "noop",
                    "transition": {"branches": [{"operator": "equal", "goto": "zz"}]},
                },
            ],
        }
    )
    messages = [f"{t} {p} {m}" for _, t, p, m in found]
    assert any("prompt_templte" in m for m in messages)  # schema
    assert any("unknown operator 'equal'" in m for m in messages)  # lint of the valid task
    assert any("unknown task 'zz'" in m for m in messages)
    assert not any(
        "unknown task 'b'" in m for m in messages
    )  # `b` exists even though `a` is invalid
