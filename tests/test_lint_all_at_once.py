"""`taskengine validate` in one pass: schema and lint problems together, loops with no way out."""

from taskengine.chain import load_chain, parse_chain


def messages(chain: dict) -> list[str]:
    _, problems = parse_chain(chain)
    return [str(p) for p in problems if p.severity != "info" and "unreachable" not in p.message]


def test_an_unknown_key_does_not_hide_the_tasks_other_problems():
    found = messages(
        {
            "id": "c",
            "tasks": [
                {
                    "id": "ask",
                    "handler": "condition_key",
                    "prompt_templte": "x",
                    "retry_on_failure": "many",
                    "transition": {"branches": [{"operator": "default", "goto": "nowhere"}]},
                }
            ],
        }
    )
    assert (
        "error: chain 'c', task 'ask', prompt_templte: unknown key 'prompt_templte' (did you mean 'prompt_template'?)"
        in found
    )
    assert sum("retry_on_failure" in m for m in found) == 1  # the schema's, not a second lint copy
    assert (
        "error: chain 'c', task 'ask', valid_conditions: condition_key tasks need valid_conditions"
        in found
    )
    assert any("transition.branches[0].goto: unknown task 'nowhere'" in m for m in found)


def test_a_loop_no_branch_can_leave_is_a_warning():
    chain = {
        "id": "spin",
        "tasks": [
            {
                "id": "a",
                "handler": "noop",
                "transition": {"branches": [{"operator": "default", "goto": "b"}]},
            },
            {
                "id": "b",
                "handler": "noop",
                "transition": {"branches": [{"operator": "default", "goto": "a"}]},
            },
        ],
    }
    found = messages(chain)
    assert found == [
        "warning: chain 'spin', task 'a', transition.branches: loop through a, b has no way out: "
        "every branch stays in it, so a run only stops at max_steps (1000)"
    ]
    load_chain(chain)  # a warning, not an error
    self_loop = {
        "id": "s",
        "tasks": [
            {
                "id": "a",
                "handler": "noop",
                "transition": {"branches": [{"operator": "default", "goto": "a"}]},
            }
        ],
    }
    assert "'a' back to itself has no way out" in messages(self_loop)[0]


def test_loops_with_an_exit_are_fine():
    def loop(branches, on_failure=None):
        return {
            "id": "ok",
            "tasks": [
                {
                    "id": "a",
                    "handler": "noop",
                    "transition": {"branches": branches, "on_failure": on_failure},
                },
                {"id": "done", "handler": "noop"},
            ],
        }

    to_a = {"operator": "default", "goto": "a"}
    assert messages(loop([{"operator": "equals", "when": "x", "goto": "end"}, to_a])) == []
    assert (
        messages(loop([{"operator": "equals", "when": "x", "goto": "a"}])) == []
    )  # no default: a miss ends it
    assert messages(loop([to_a], on_failure="done")) == []
    assert "no way out" in messages(loop([to_a]))[0]


def test_a_long_chain_lints_quickly_without_recursion():
    tasks = [
        {
            "id": f"t{i}",
            "handler": "noop",
            "transition": {"branches": [{"operator": "default", "goto": f"t{i + 1}"}]},
        }
        for i in range(5000)
    ]
    tasks[-1]["transition"]["branches"][0]["goto"] = "t0"  # one ring of 5000 tasks
    found = messages({"id": "ring", "tasks": tasks})
    assert len(found) == 1 and "has no way out" in found[0]


def test_an_unknown_key_that_is_empty_or_dotted_is_still_named_by_its_path():
    # found by the server's fuzz test: a key '' gave a problem with no path at all
    _, problems = parse_chain(
        {
            "id": "c",
            "": 1,
            "tasks": [
                {
                    "id": "a",
                    "handler": "noop",
                    "a.b": 2,
                    "transition": {"branches": [{"operator": "default", "goto": "end", " ": 3}]},
                }
            ],
        }
    )
    paths = {(p.task_id, p.path) for p in problems if "unknown key" in p.message}
    assert paths == {(None, '[""]'), ("a", '["a.b"]'), ("a", 'transition.branches[0][" "]')}
