"""Go text/template actions written for the Go engine render the same here."""

import pytest

from taskengine.errors import TemplateError
from taskengine.templates import render, template_variables

VARS = {
    "input": "hi",
    "items": [{"n": 1}, {"n": 2}],
    "m": {"k": "v"},
    "flag": True,
    "task": {"field": 3},
    "previous_output": "P",
    "x": "",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{if .flag}}yes{{else}}no{{end}}", "yes"),
        ('{{if eq .input "hi"}}greet{{else if eq .input "bye"}}leave{{end}}', "greet"),
        ('{{if eq .input "a" "b" "hi"}}one of{{end}}', "one of"),
        ("{{range .items}}[{{.n}}]{{end}}", "[1][2]"),
        ("{{range $i, $e := .items}}{{$i}}:{{$e.n}} {{end}}", "0:1 1:2 "),
        ("{{range .x}}a{{else}}empty{{end}}", "empty"),
        ('{{index .m "k"}}', "v"),
        ('{{printf "%s-%d" .input 5}}', "hi-5"),
        ("{{len .items}}", "2"),
        ("{{/* a comment */}}ok", "ok"),
        ("{{with .task}}{{.field}}{{end}}", "3"),
        ("{{range .items}}{{$.input}}{{end}}", "hihi"),
        ('{{ "see .input here" }}', "see .input here"),
        ('{{ .task.field }} {{ input | upper }} {{ index . "previous_output" }}', "3 HI P"),
        ("{{ range $k, $v := .m }}{{$k}}={{$v}};{{end}}", "k=v;"),
        ("{{range .m}}{{.}}{{end}}", "v"),
        ("{{ not x == 1 }}", "true"),  # plain Jinja stays Jinja
        ("{% if flag %}{{ ' .input' }}{% endif %}", " .input"),
        ("{{ .missing_var | default('0') }}", "0"),
        ("{{$x := .input}}{{$x}}!", "hi!"),
        ("{{if and .flag (not .x)}}both{{end}}", "both"),
        ("{{if lt (len .items) 3}}few{{end}}", "few"),
        ("a {{- .input -}}  b", "ahib"),
        ("{% if .flag %}J{% endif %}", "J"),
    ],
)
def test_go_actions(source, expected):
    assert render(source, VARS) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{{template "x"}}', "'template' is not supported"),
        ("{{if .flag}}open", "never closed"),
        ("{{end}}", "without an opening"),
        ("{{ if ne .x }}y{{end}}", "takes 2 argument"),
    ],
)
def test_unsupported_or_unbalanced_actions_are_clear_errors(source, message):
    with pytest.raises(TemplateError, match=message):
        render(source, VARS)


def test_lint_sees_variables_through_go_actions():
    assert template_variables("{{range .items}}{{.n}}{{end}}{{if .flag}}{{.input}}{{end}}") == {
        "items",
        "flag",
        "input",
    }
