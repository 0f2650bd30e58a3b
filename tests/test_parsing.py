import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskengine.errors import ParseError
from taskengine.parsing import (
    parse_condition,
    parse_key_value,
    parse_number,
    parse_range,
    parse_score,
    parse_transition,
)


@pytest.mark.parametrize(
    ("text", "n"),
    [("42", 42), ('"42"', 42), ("The answer is 42.", 42), ("42.0", 42), ("-7", -7), ("  12\n", 12)],
)
def test_parse_number(text, n):
    assert parse_number(text) == n


@pytest.mark.parametrize("text", ["", "none", "about half"])
def test_parse_number_rejects_and_shows_reply(text):
    with pytest.raises(ParseError, match="expected an integer"):
        parse_number(text)


@given(st.integers(-(10**9), 10**9), st.sampled_from(["{}", '"{}"', "Answer: {}.", "{} apples"]))
def test_parse_number_finds_the_number(n, shape):
    assert parse_number(shape.format(n)) == n


@given(st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)))
def test_parse_score_round_trips(x):
    assert parse_score(f"Score: {x}") == pytest.approx(x)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5-7", "5-7"),
        ("5", "5-5"),
        (" 3 - 4 ", "3-4"),
        ('"7-5"', "7-5"),
        ("5-7.", "5-7"),
        ("2.5-3", "2.5-3"),
        ("10 to 20", "10-20"),
    ],
)
def test_parse_range(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    "text", ["no numbers here", "1-2-3", "5-", "5-7-", "-5", "between 3 and 4? 3 - 4"]
)
def test_parse_range_rejects(text):
    with pytest.raises(ParseError):
        parse_range(text)


@pytest.mark.parametrize("reply", ["yes", "Yes.", " YES ", '"yes"', "yes, it is", "'Yes'"])
def test_condition_tolerates_case_quotes_period(reply):
    assert parse_condition(reply, {"yes": True, "no": False}) == ("yes", True)


def test_condition_outside_valid_conditions():
    with pytest.raises(ParseError, match="not one of the valid conditions: yes, no"):
        parse_condition("maybe", {"yes": True, "no": False})


def test_key_value_forms():
    assert parse_key_value("name=John, age=30, city=New York") == {
        "name": "John",
        "age": 30,
        "city": "New York",
    }
    assert parse_key_value("a: 1\nb: two, three") == {"a": 1, "b": "two, three"}
    assert parse_key_value("x=1; y='a, b'; ok=true; r=2.5; z=\"7\"") == {
        "x": 1,
        "y": "a, b",
        "ok": True,
        "r": 2.5,
        "z": 7,
    }
    assert parse_key_value("") == {}
    with pytest.raises(ParseError):
        parse_key_value("just words")
    with pytest.raises(ParseError):
        parse_key_value("a=1, b")


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.from_regex(
            r"[A-Za-z][A-Za-z ]{0,10}[A-Za-z]|[A-Za-z]|[1-9][0-9]{0,5}", fullmatch=True
        ).filter(lambda v: v not in ("true", "false")),
        min_size=1,
        max_size=6,
    )
)
def test_key_value_round_trip(pairs):
    text = ", ".join(f"{k}={v}" for k, v in pairs.items())
    typed = {k: int(v) if v.isdigit() else v for k, v in pairs.items()}
    assert parse_key_value(text) == typed


def test_parse_transition():
    assert parse_transition("/search cats and dogs") == "search"
    assert parse_transition("  /help") == "help"
    assert parse_transition("hello") == "pass"
    assert parse_transition("") == ""
    with pytest.raises(ParseError):
        parse_transition("/ x")


@pytest.mark.parametrize(
    ("fn", "text", "expected"),
    [
        (parse_score, ".5", 0.5),
        (parse_score, "3.", 3.0),
        (parse_number, "1,000", 1000),
        (parse_number, "It costs 12,500 dollars.", 12500),
        (parse_range, "between 3 and 5", "3-5"),
        (parse_range, "From 1,000 to 2,000", "1000-2000"),
    ],
)
def test_sloppy_replies_reported_by_review(fn, text, expected):
    assert fn(text) == expected


def test_condition_exact_key_wins_over_a_tolerant_match():
    # Go takes the key the reply equals; two keys that differ only in case must not be confused
    assert parse_condition("Yes", {"Yes": True, "yes": False}) == ("Yes", True)
    assert parse_condition("yes", {"Yes": True, "yes": False}) == ("yes", False)
