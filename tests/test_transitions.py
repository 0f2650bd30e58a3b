import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskengine.chain import TaskTransition, TransitionBranch
from taskengine.errors import TaskExecutionError
from taskengine.transitions import compare, evaluate_transitions, supported_operators


def test_all_ten_operators():
    assert supported_operators() == [
        "equals",
        "contains",
        "starts_with",
        "ends_with",
        ">",
        "gt",
        "<",
        "lt",
        "in_range",
        "default",
    ]


@pytest.mark.parametrize(
    ("op", "value", "when", "expected"),
    [
        ("equals", " yes ", "yes", False),  # exact, as in Go
        ("equals", "yes", "no", False),
        ("contains", "a big cat", "big", True),
        ("starts_with", "/cmd x", "/cmd", True),
        ("ends_with", "file.txt", ".txt", True),
        (">", '"42"', "41", True),
        ("gt", "score: 7.", "7", False),
        ("<", "3", "3.5", True),
        ("lt", "n/a", "3", False),
        ("in_range", "5", "5-7", True),
        ("in_range", "7", "5-7", True),
        ("in_range", "7.01", "5-7", False),
        ("in_range", "-3", "-5-5", True),
        ("default", "anything", "", True),
    ],
)
def test_compare(op, value, when, expected):
    assert compare(op, value, when) is expected


def test_explicit_branches_first_then_default():
    tr = TaskTransition(
        branches=[
            TransitionBranch(operator="default", goto="fallback"),
            TransitionBranch(operator="equals", when="x", goto="x_task"),
        ]
    )
    assert evaluate_transitions(tr, "x") == "x_task"
    assert evaluate_transitions(tr, "y") == "fallback"


def test_no_match_without_default_is_an_error():
    tr = TaskTransition(branches=[TransitionBranch(operator="equals", when="x", goto="a")])
    with pytest.raises(TaskExecutionError, match="no transition branch matches 'y'"):
        evaluate_transitions(tr, "y", task_id="t")


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_in_range_is_inclusive_and_agrees_with_gt_lt(n, a, b):
    low, high = min(a, b), max(a, b)
    inside = compare("in_range", str(n), f"{low}-{high}")
    assert inside == (low <= n <= high)
    assert compare(">", f"value {n}.", str(low)) == (n > low)
    assert compare("lt", f'"{n}"', str(high)) == (n < high)


@given(st.text(), st.text())
def test_string_operators_never_raise(value, when):
    for op in supported_operators():
        assert compare(op, value, when) in (True, False)
