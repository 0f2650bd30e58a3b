"""Go's fmt rules in `taskengine.templates.gofmt`, beyond what the template table exercises."""

import math

import pytest

from taskengine.errors import TemplateError
from taskengine.templates import render
from taskengine.templates.gofmt import format_value, sprint, sprintf, sprintln


@pytest.mark.parametrize(
    ("fmt", "args", "expected"),
    [
        ("%6.2f", (3.14159,), "  3.14"),
        ("%x", ("hello",), "68656c6c6f"),
        ("% x", ("hello",), "68 65 6c 6c 6f"),
        ("%#x", ("hello",), "0x68656c6c6f"),
        ("%# x", ("hel",), "0x68 0x65 0x6c"),
        ("%08b", (5,), "00000101"),
        ("%v", (math.inf,), "+Inf"),
        ("%5.1f", (-math.inf,), " -Inf"),
        ("%.3x", (1.0,), "0x1.000p+00"),
        ("%x", (0.0,), "0x0p+00"),
        ("%v", (-0.0,), "-0"),
        ("%v", (1e21,), "1e+21"),
        ("%v", (123456789.0,), "1.23456789e+08"),
        ("%v", (0.000123,), "0.000123"),
        ("%g", (1e-5,), "1e-05"),
        ("%", (), "%!(NOVERB)"),
        ("%z", (1,), "%!z(int=1)"),
        ("%d", (None,), "%!d(<nil>)"),
        ("%v %v", (None, [1, None]), "<nil> [1 <nil>]"),
        ("%q", ("tab\there",), '"tab\\there"'),
        ("%#q", ("tab\there",), "`tab\there`"),
        ("%#q", ("back`quote",), '"back`quote"'),
        ("%c|%c", (0x1F600, -1), "😀|\ufffd"),
    ],
)
def test_sprintf(fmt, args, expected):
    assert sprintf(fmt, *args) == expected


def test_sprint_and_sprintln_spacing():
    assert sprint(1, 2, "x", 3, "y", "z") == "1 2x3yz"
    assert sprintln("a", 1, 2.5) == "a 1 2.5\n"
    assert format_value({"b": [1.0, True], "a": "x"}) == "map[a:x b:[1 true]]"


def test_huge_widths_are_refused_in_templates():
    with pytest.raises(TemplateError, match="too large"):
        render('{{printf "%99999999d" 1}}', {})
    with pytest.raises(TemplateError, match="too large"):
        render('{{printf "%*d" 99999999 1}}', {})
