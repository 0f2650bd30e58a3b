"""Sandboxed template rendering for prompts, prints, system instructions and output templates.

Both the Go engine's syntax (`{{.input}}`, `{{ .task.field }}`) and Jinja's (`{{ input }}`) are
accepted: Go-style references are rewritten to Jinja names once, when the template is compiled.
Rendering runs in Jinja's immutable sandbox, so templates cannot reach Python internals, and
values are inserted as text: a value that itself contains `{{ … }}` is never rendered again.
Jinja is imported by the first template that has markup, so a run of plain-text prompts never
loads it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from taskengine.errors import TemplateError
from taskengine.templates.bounds import check_source

if TYPE_CHECKING:
    from jinja2 import UndefinedError

__all__ = ["Template", "compile_template", "render", "template_variables"]


#: Names Jinja does not look up in the variables at the top level of a template.
_SPECIAL_NAMES = frozenset({"self", "super", "loop", "caller", "varargs", "kwargs"})


class _Jinja:
    """The Jinja names this module uses, imported by `load()` (the first template with markup)."""

    loaded = False
    nodes: Any
    SecurityError: Any
    TemplateSyntaxError: Any
    UndefinedError: Any
    SANDBOX: Any
    finalize: Any
    range_budget: Any
    template_to_jinja: Any

    @classmethod
    def load(cls) -> None:
        if cls.loaded:
            return
        from jinja2 import TemplateSyntaxError, UndefinedError, nodes
        from jinja2.sandbox import SecurityError

        from taskengine.templates.gotemplate import template_to_jinja
        from taskengine.templates.sandbox import SANDBOX, finalize, range_budget

        cls.nodes, cls.SecurityError = nodes, SecurityError
        cls.TemplateSyntaxError, cls.UndefinedError = TemplateSyntaxError, UndefinedError
        cls.SANDBOX, cls.finalize, cls.range_budget = SANDBOX, finalize, range_budget
        cls.template_to_jinja = template_to_jinja
        cls.loaded = True


def _simple_parts(jinja_source: str) -> tuple[tuple[bool, str], ...] | None:
    """The template as (is_variable, text) parts when it is only text and `{{ name }}` outputs.

    Most prompts look like that (`Summarise: {{ .t2 }}`). Jinja renders them as the text plus
    `str(finalize(value))` of each name, but builds a fresh context (several dicts and sets)
    per render: about 8 us, a tenth of the engine's own cost per model call. Anything else
    (filters, attributes, statements, constants) returns None and renders through Jinja.
    """
    nodes = _Jinja.nodes
    parts: list[tuple[bool, str]] = []
    for node in _Jinja.SANDBOX.parse(jinja_source).body:
        if type(node) is not nodes.Output:
            return None
        for child in node.nodes:
            if type(child) is nodes.TemplateData:
                parts.append((False, child.data))
            elif (
                type(child) is nodes.Name
                and child.ctx == "load"
                and child.name not in _SPECIAL_NAMES
            ):
                parts.append((True, child.name))
            else:
                return None
    return tuple(parts)


class Template:
    """A compiled template; `render(variables)` fills it, `static` marks text without markup."""

    __slots__ = ("_compiled", "_parts", "source", "static")

    def __init__(self, source: str) -> None:
        self.source = source
        self.static = "{{" not in source and "{%" not in source
        self._compiled = None
        self._parts: tuple[tuple[bool, str], ...] | None = None
        if not self.static:
            _Jinja.load()
            try:
                check_source(source)
                jinja_source = _Jinja.template_to_jinja(source)
                self._compiled = _Jinja.SANDBOX.from_string(jinja_source)
            except _Jinja.TemplateSyntaxError as exc:
                raise TemplateError(
                    f"template does not parse (line {exc.lineno}): {exc.message}"
                ) from exc
            except _Jinja.SecurityError as exc:
                raise TemplateError(f"template not allowed: {exc}") from None
            except RecursionError:
                raise TemplateError("template not allowed: it nests too deeply") from None
            self._parts = _simple_parts(jinja_source)

    def _render_simple(self, variables: dict[str, Any]) -> str | None:
        """The fast path's text, or None to let Jinja render (and report any problem) as usual."""
        finalize = _Jinja.finalize
        out = []
        for is_name, text in self._parts:  # type: ignore[union-attr]
            if not is_name:
                out.append(text)
                continue
            if text not in variables:  # a global, or missing: Jinja knows what to do
                return None
            try:
                out.append(str(finalize(variables[text])))
            except Exception:
                return None
        return "".join(out)

    def render(
        self, variables: dict[str, Any], *, task_id: str | None = None, field: str | None = None
    ) -> str:
        if self._compiled is None:
            return self.source
        if self._parts is not None:
            text = self._render_simple(variables)
            if text is not None:
                return text
        range_budget = _Jinja.range_budget
        token = range_budget.set(0)
        try:
            return self._compiled.render(variables)
        except _Jinja.UndefinedError as exc:
            raise TemplateError(
                f"{_undefined_message(exc)}; available variables: {', '.join(sorted(variables))}",
                task_id=task_id,
                field=field,
            ) from None
        except _Jinja.SecurityError as exc:
            raise TemplateError(
                f"template not allowed: {exc}", task_id=task_id, field=field
            ) from None
        except TemplateError:
            raise
        except Exception as exc:  # a filter or value that fails while rendering
            raise TemplateError(f"template failed: {exc}", task_id=task_id, field=field) from exc
        finally:
            range_budget.reset(token)


def _undefined_message(exc: UndefinedError) -> str:
    text = str(exc.message or exc)
    m = re.match(r"'(\w+)' is undefined", text)
    if m:
        return f"missing variable {m.group(1)!r}"
    m = re.match(r"'.*?' has no attribute '(\w+)'", text) or re.match(
        r".* has no attribute '(\w+)'", text
    )
    if m:
        return f"missing field {m.group(1)!r} ({text})"
    return text


@lru_cache(maxsize=2048)
def compile_template(source: str) -> Template:
    """Compile once, reuse everywhere (templates are immutable)."""
    return Template(source)


def render(
    source: str, variables: dict[str, Any], *, task_id: str | None = None, field: str | None = None
) -> str:
    """Render `source` against `variables` (a missing variable raises `TemplateError`)."""
    if "{{" not in source and "{%" not in source:
        return source
    try:
        template = compile_template(source)
    except TemplateError as exc:
        raise exc.with_context(task_id=task_id, field=field) from None
    return template.render(variables, task_id=task_id, field=field)


def template_variables(source: str) -> set[str]:
    """Top-level variable names a template refers to (for lint)."""
    if "{{" not in source and "{%" not in source:
        return set()
    from jinja2 import meta

    _Jinja.load()
    jinja_source = _Jinja.template_to_jinja(source)
    return set(meta.find_undeclared_variables(_Jinja.SANDBOX.parse(jinja_source)))
