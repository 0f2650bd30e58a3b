import pytest

from taskengine.datatypes import ChatHistory, Message
from taskengine.errors import TemplateError
from taskengine.templates import render, template_variables


def test_go_and_jinja_syntax():
    variables = {"input": "hi", "task": {"field": 3}}
    assert (
        render("{{.input}} / {{ .task.field }} / {{ input }} / {{ task.field }}", variables)
        == "hi / 3 / hi / 3"
    )


def test_values_are_never_rendered_again():
    assert render("say {{ .input }}", {"input": "{{ 7 * 7 }}"}) == "say {{ 7 * 7 }}"


def test_missing_variable_names_it_and_the_task():
    with pytest.raises(TemplateError) as info:
        render("{{ .nope }}", {"input": "x"}, task_id="t1", field="prompt_template")
    assert "missing variable 'nope'" in str(info.value)
    assert info.value.task_id == "t1"


def test_sandbox_blocks_python_internals():
    with pytest.raises(TemplateError):
        render("{{ input.__class__.__mro__ }}", {"input": "x"})
    with pytest.raises(TemplateError):
        render("{{ h.model_copy.__globals__ }}", {"h": ChatHistory()})


def test_non_strings_render_as_json():
    assert render("{{ .d }}", {"d": {"a": [1, 2]}}) == '{"a":[1,2]}'
    history = ChatHistory(messages=[Message(role="user", content="yo")])
    assert render("{{ h.messages[0].content }}", {"h": history}) == "yo"


def test_static_text_passes_through():
    assert render("plain text", {}) == "plain text"


def test_template_variables_understands_go_syntax():
    assert template_variables("{{ .a.b }} {% for x in items %}{{ x }}{% endfor %}") == {
        "a",
        "items",
    }


def test_top_level_dot_is_the_variable_map_as_in_go():
    assert render("<{{.}}>", {"previous_output": "p"}) == '<{"previous_output":"p"}>'
    assert render('{{ index . "my-task" }}', {"my-task": "T"}) == "T"


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 300000000 }}",
        "{{ [1] * 10000000 }}",
        "{{ 9 ** 999999 }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{{ 'x' | center(1000000000) }}",
    ],
)
def test_templates_cannot_exhaust_memory_or_the_loop(source):
    with pytest.raises(TemplateError, match="not allowed"):
        render(source, {"input": "x"})


def test_bounded_templates_still_work():
    assert (
        render("{{ '-' * 3 }}{{ 2 ** 3 }}{% for i in range(3) %}{{ i }}{% endfor %}", {})
        == "---8012"
    )
    assert render("{{ 'ab' | center(6) }}", {}) == "  ab  "


SIMPLE_VALUES = [None, True, 0, 3, 2.5, "é ünïcode", "{{ not rendered }}", [1, "a"], {"k": [1]}]


@pytest.mark.parametrize("value", SIMPLE_VALUES, ids=repr)
@pytest.mark.parametrize("source", ["Q: {{ x }}!", "{{ .x }}", "{{- x }}\n", "a{{x}}b{{ x }}c"])
def test_plain_name_templates_render_exactly_as_jinja_does(source, value):
    """Text-and-names templates skip Jinja's per-render context; the output must not change."""
    from taskengine.templates import Template

    template = Template(source)
    assert template._parts is not None  # the fast path applies
    assert template.render({"x": value}) == template._compiled.render({"x": value})


def test_templates_with_more_than_names_still_render_through_jinja():
    from taskengine.templates import Template

    for source in ["{{ x | upper }}", "{{ x.y }}", "{% if x %}y{% endif %}", "{{ 'c' }}"]:
        assert Template(source)._parts is None
    # a name the variables lack falls back to Jinja, which reports it as before
    with pytest.raises(TemplateError, match="nope"):
        render("{{ nope }}", {"x": 1})
