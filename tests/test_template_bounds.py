"""Issue 14, item 2: template bombs are refused at load and at run time, in linear time."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from taskengine.chain import load_chain
from taskengine.errors import ChainValidationError, TemplateError
from taskengine.templates import Template, render
from taskengine.templates.bounds import set_max_template_chars


def _chain(template: str) -> dict:
    return {"id": "bomb", "tasks": [{"id": "t", "handler": "noop", "prompt_template": template,
            "transition": {"branches": [{"operator": "default", "goto": "end"}]}}]}  # fmt: skip


def _bounded(fn) -> tuple[float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        fn()
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return elapsed, peak


WIDTH_BOMBS = [
    '{{ printf "%0999999999d" 1 }}',
    '{{ "%0999999999d" % 1 }}',
    '{{ "%.999999999f" % 1.5 }}',
    '{{ "%0*d" % (999999999, 1) }}',
    '{{ "%0999999999d" | format(1) }}',
    '{{ "{:0999999999d}".format(1) }}',
    '{{ "{:0{w}d}".format(1, w=999999999) }}',
    '{{ "x".ljust(999999999) }}',
    '{{ "x".zfill(999999999) }}',
]


@pytest.mark.parametrize("template", WIDTH_BOMBS)
def test_width_bombs_are_refused_without_building_the_string(template: str) -> None:
    def load_and_render() -> None:
        try:
            chain = load_chain(_chain(template))  # lint must not evaluate the width
        except ChainValidationError as exc:
            assert "too large" in str(exc)
            return
        task = chain.tasks[0]
        with pytest.raises(TemplateError, match="too large"):
            render(task.prompt_template, {"input": "x"}, task_id="t", field="prompt_template")

    elapsed, peak = _bounded(load_and_render)
    assert elapsed < 1.0 and peak < 20_000_000, (elapsed, peak)


def test_width_from_the_input_is_bounded_at_run_time() -> None:
    template = Template('{{ "%0*d" % (input | int, 7) }}')
    assert template.render({"input": "5"}) == "00007"
    with pytest.raises(TemplateError, match="too large"):
        template.render({"input": "999999999"})
    printf = Template('{{ printf "%0*d" (input | int) 7 }}')
    with pytest.raises(TemplateError, match="too large"):
        printf.render({"input": "999999999"})


@pytest.mark.parametrize("count", [100, 20_000, 99_000])
def test_runs_of_braces_are_refused_in_linear_time(count: int) -> None:
    def load() -> None:
        with pytest.raises(ChainValidationError, match="prompt_template") as info:
            load_chain(_chain("{" * count))
        assert "nest" in str(info.value)

    elapsed, _ = _bounded(load)
    assert elapsed < 1.0, f"{count} braces took {elapsed:.2f} s"


def test_unclosed_actions_translate_in_linear_time() -> None:
    from taskengine.templates.gotemplate import go_to_jinja

    elapsed, _ = _bounded(lambda: go_to_jinja("}} " + "{" * 50_000))
    assert elapsed < 0.5, f"translation took {elapsed:.2f} s"
    assert go_to_jinja("a {{- .x -}} b {{.y}}") == "a {{- x -}} b {{ y }}"


def test_template_size_has_a_limit() -> None:
    set_max_template_chars(1000)
    try:
        with pytest.raises(TemplateError, match=r"limits\.max_template_chars"):
            Template("{{ input }}" + "x" * 2000)
    finally:
        set_max_template_chars(100_000)


def test_ordinary_formatting_still_works() -> None:
    assert render('{{ "%05.1f" % 3.14159 }}', {}) == "003.1"
    assert render('{{ "{:>6}".format("ab") }}', {}) == "    ab"
    assert render('{{ "%s-%s" | format("a", "b") }}', {}) == "a-b"
    assert render('{{ printf "%05d" 42 }}', {}) == "00042"
    assert render("{{ {'a': {'b': [1, (2)]}} }}", {}) == '{"a":{"b":[1,2]}}'


@pytest.mark.parametrize(
    "template", ['{{ input | replace("a", input) }}', '{{ input.replace("a", input) }}']
)
def test_replace_that_would_explode_the_input_is_refused(template: str) -> None:
    def run() -> None:
        with pytest.raises(TemplateError, match="replace would build"):
            Template(template).render({"input": "a" * 3000})

    _elapsed, peak = _bounded(run)
    assert peak < 5_000_000, peak
    assert Template('{{ input | replace("b", "X") }}').render({"input": "abc"}) == "aXc"


@pytest.mark.parametrize(
    "template",
    ["{{ range(100000) | join(input) }}", '{{ input.join(range(100000) | map("string") | list) }}'],
)
def test_join_that_would_explode_is_refused(template: str) -> None:
    with pytest.raises(TemplateError, match="join would build"):
        Template(template).render({"input": "a" * 3000})
    assert Template('{{ [1, 2] | join(",") }}').render({}) == "1,2"
