"""Input sanitization: control characters out of prompts, sizes measured as UTF-8 JSON."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskengine.errors import StepValidationError
from taskengine.sanitize import check_size, json_size, sanitize_text, sanitize_value


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain text", "plain text"),
        ("keep\ttabs\nand newlines", "keep\ttabs\nand newlines"),
        ("windows\r\nline\rends", "windows\nline\nends"),
        ("nul\x00bell\x07esc\x1b[0m", "nulbellesc[0m"),
        ("del\x7f c1\x85\x9b", "del c1"),
        ("bidi \u202eevil\u202c and \u2066isolate\u2069", "bidi evil and isolate"),
        ("emoji 👩\u200d💻 and accents é stay", "emoji 👩\u200d💻 and accents é stay"),
    ],
)
def test_sanitize_text(raw, clean):
    assert sanitize_text(raw) == clean


@given(st.text())
def test_sanitized_text_has_no_control_characters_but_newline_and_tab(text):
    clean = sanitize_text(text)
    assert all(ch in "\n\t" or not (ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F) for ch in clean)
    assert sanitize_text(clean) == clean


def test_sanitize_value_cleans_nested_strings_and_keys():
    value = {"k\x00ey": ["a\x01", {"b": "c\x02"}, 3, None], "n": 1.5}
    assert sanitize_value(value) == {"key": ["a", {"b": "c"}, 3, None], "n": 1.5}


def test_sizes_are_utf8_json_bytes():
    assert json_size({"a": "é"}) == len('{"a":"é"}'.encode())
    assert check_size("ééé", 6) == 6
    assert check_size({"x": 1}, None) == 7


def test_over_the_limit_is_a_step_validation_error_naming_the_field():
    with pytest.raises(StepValidationError) as info:
        check_size({"text": "x" * 100}, 50, what="input_data", task_id="t")
    assert info.value.field == "input_data" and info.value.task_id == "t"
    assert "input_data is 111 bytes, over the limit of 50 bytes" in str(info.value)


def test_values_json_cannot_hold_are_rejected():
    with pytest.raises(StepValidationError, match="must be JSON-serializable") as info:
        json_size({"when": {1, 2}}, what="input_data")
    assert isinstance(info.value.__cause__, TypeError)
