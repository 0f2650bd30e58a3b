"""Docstring parsing, string-argument coercion and `$ref` inlining."""

from __future__ import annotations

import pytest

from taskengine.errors import HookError
from taskengine.hooks.schema import coerce_string_args, function_spec, inline_refs, parse_docstring


def test_google_docstring_sections() -> None:
    doc = """Send a message.

    Second paragraph.

    Args:
        channel (str): Where to post,
            e.g. "#ops".
        text: The message.

    Returns:
        The message id.
    """
    summary, params = parse_docstring(doc)
    assert summary == "Send a message.\n\nSecond paragraph."
    assert params == {"channel": 'Where to post, e.g. "#ops".', "text": "The message."}


def test_rest_docstring_and_no_docstring() -> None:
    summary, params = parse_docstring("Add.\n\n:param int a: first\n:param b: second\n    more\n")
    assert summary == "Add." and params == {"a": "first", "b": "second more"}
    assert parse_docstring(None) == ("", {})


def test_coercion_follows_the_schema() -> None:
    schema = {
        "properties": {
            "n": {"type": "integer"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "name": {"type": "string"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "anything": {},
        }
    }
    values = {
        "n": "3",
        "flag": "Yes",
        "tags": '["a"]',
        "name": "007",
        "either": "4",
        "maybe": "",
        "anything": "[1]",
        "unknown": "x",
    }
    assert coerce_string_args(values, schema) == {
        "n": 3,
        "flag": True,
        "tags": ["a"],
        "name": "007",  # a string field keeps its text
        "either": "4",  # a string is acceptable, so it is left alone
        "anything": "[1]",
        "unknown": "x",  # left for validation to reject
    }  # "maybe" rendered empty → not given
    assert coerce_string_args({"n": "three"}, schema) == {"n": "three"}


def test_inline_refs_handles_recursion_and_siblings() -> None:
    schema = {
        "type": "object",
        "properties": {"node": {"$ref": "#/$defs/Node", "description": "root"}},
        "$defs": {
            "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}},
        },
    }
    out = inline_refs(schema)
    assert "$defs" not in out
    node = out["properties"]["node"]
    assert node["description"] == "root"
    assert node["properties"]["child"] == {"type": "object"}  # the cycle is cut, not followed
    with pytest.raises(HookError, match="points at nothing"):
        inline_refs({"$ref": "#/components/schemas/Missing"})


def test_unusable_signatures_are_reported() -> None:
    def positional_only(a: int, /) -> int:
        return a

    with pytest.raises(HookError, match="must be passable by keyword"):
        function_spec(positional_only, title="h.t")

    def bad_hint(a: NoSuchType) -> int:  # type: ignore[name-defined]  # noqa: F821
        return 1

    with pytest.raises(HookError, match=r"cannot read the type hints of h\.t"):
        function_spec(bad_hint, title="h.t")
