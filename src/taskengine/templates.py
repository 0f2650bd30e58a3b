"""Sandboxed template rendering for prompts, prints, system instructions and output templates.

Both the Go engine's syntax (`{{.input}}`, `{{ .task.field }}`) and Jinja's (`{{ input }}`) are
accepted: Go-style references are rewritten to Jinja names once, when the template is compiled.
Rendering runs in Jinja's immutable sandbox, so templates cannot reach Python internals, and
values are inserted as text: a value that itself contains `{{ … }}` is never rendered again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from jinja2 import (
    StrictUndefined,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
    pass_context,
    pass_eval_context,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from taskengine.datatypes import to_display
from taskengine.errors import TemplateError
from taskengine.gofmt import format_value, sprint, sprintf, sprintln
from taskengine.gotemplate import go_to_jinja
from taskengine.template_bounds import (
    check_brace_format,
    check_join,
    check_percent_format,
    check_replace,
    check_source,
    check_width_call,
)

__all__ = ["Template", "compile_template", "render", "template_variables"]

_STMT = re.compile(r"(\{%-?)(.*?)(-?%\})", re.S)
# A Go field reference: a dot that does not follow a name, bracket, paren or quote, then a name.
_GO_REF = re.compile(r"(?<![\w\]\)\.'\"])\.([A-Za-z_]\w*)")


def _go_to_jinja(source: str) -> str:
    """Go actions in `{{ }}` become Jinja; Go references inside Jinja `{% %}` statements too."""
    translated = go_to_jinja(source)
    return _STMT.sub(lambda m: m.group(1) + _unquoted_refs(m.group(2)) + m.group(3), translated)


_QUOTED = re.compile(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")


def _unquoted_refs(body: str) -> str:
    """Rewrite `.name` references outside string literals only."""
    parts = _QUOTED.split(body)
    return "".join(p if i % 2 else _GO_REF.sub(r"\1", p) for i, p in enumerate(parts))


def _finalize(value: Any) -> Any:
    """Text of an output value: Go's `%v` for numbers (`7.0` prints `7`), JSON for structures."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return format_value(value)
    return to_display(value)


#: Bounds that keep one template from exhausting memory or the event loop.
MAX_SEQUENCE = 100_000  # items a range() may produce in one render, and str/list repetition size
MAX_WIDTH = 10_000  # width arguments of padding filters


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus limits on repetition, powers and range() per render."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str):
                check_percent_format(left, right)
            return left % right
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError(f"exponent {right} is too large for a template")
            return left**right
        for seq, times in ((left, right), (right, left)):
            repeats = isinstance(seq, (str, list, tuple)) and type(times) is int
            if repeats and len(seq) * times > MAX_SEQUENCE:
                raise SecurityError(f"repetition would build {len(seq) * times:,} items")
        return left * right

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_width_call(obj, args)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            check_brace_format(fmt, args, kwargs)
            return wrapped(*args, **kwargs)

        return bounded


def _bounded_range(*args: int) -> range:
    produced = _range_budget.get()
    result = range(*args)
    if produced + len(result) > MAX_SEQUENCE:
        raise SecurityError(
            f"range() would produce more than {MAX_SEQUENCE:,} items in one template"
        )
    _range_budget.set(produced + len(result))
    return result


def _bounded_width(filter_fn: Any) -> Any:
    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > MAX_WIDTH:
            raise SecurityError(f"width {width} is too large for a template")
        return filter_fn(value, width, *args, **kwargs)

    return bounded


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's `format` filter (printf-style `%`), with widths and precisions bounded."""
    check_percent_format(str(value), kwargs or args)
    return _JINJA_FORMAT(value, *args, **kwargs)


@pass_eval_context
def _bounded_replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
    """Jinja's `replace` filter, refusing a result over `MAX_BUILT_CHARS` before building it."""
    check_replace(str(value), str(old), str(new))
    return _JINJA_REPLACE(eval_ctx, value, old, new, count)


@pass_eval_context
def _bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    """Jinja's `join` filter, refusing a result over `MAX_BUILT_CHARS` before building it."""
    items = list(value)
    check_join(str(d), items if attribute is None else [""] * len(items))
    return _JINJA_JOIN(eval_ctx, items, d, attribute)


_range_budget: ContextVar[int] = ContextVar("taskengine_template_range_budget", default=0)

_ENV = _BoundedSandbox(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=_finalize,
)
_ENV.globals["range"] = _bounded_range
_JINJA_FORMAT = _ENV.filters["format"]
_JINJA_REPLACE = _ENV.filters["replace"]
_JINJA_JOIN = _ENV.filters["join"]


@pass_context
def _go_root(context: Any) -> dict[str, Any]:
    """Go's top-level `.`: the whole variable map (e.g. `{{ index . "my-task" }}`)."""
    return {k: v for k, v in context.get_all().items() if not callable(v)}


def _go_values(value: Any) -> Any:
    """What Go's `range` yields: a map's values in key order, else the items."""
    if isinstance(value, Mapping):
        return [value[k] for k in sorted(value)]
    return value


def _go_pairs(value: Any) -> Any:
    """Go's `range $k, $v :=`: (key, value) in key order for maps, (index, item) otherwise."""
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in sorted(value)]
    return list(enumerate(value))


def _go_printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise TemplateError(f"printf needs a format string first, got {type(fmt).__name__}")
    try:
        return sprintf(fmt, *args)
    except ValueError as exc:
        raise SecurityError(str(exc)) from None


_ENV.globals["_go_root"] = _go_root
_ENV.globals["_go_printf"] = _go_printf
_ENV.globals["_go_print"] = sprint
_ENV.globals["_go_println"] = sprintln
_ENV.filters["go_values"] = _go_values
_ENV.filters["format"] = _bounded_format
_ENV.filters["replace"] = _bounded_replace
_ENV.filters["join"] = _bounded_join
_ENV.filters["go_pairs"] = _go_pairs
for _name in ("center", "indent", "wordwrap", "truncate"):
    _ENV.filters[_name] = _bounded_width(_ENV.filters[_name])


#: Names Jinja does not look up in the variables at the top level of a template.
_SPECIAL_NAMES = frozenset({"self", "super", "loop", "caller", "varargs", "kwargs"})


def _simple_parts(jinja_source: str) -> tuple[tuple[bool, str], ...] | None:
    """The template as (is_variable, text) parts when it is only text and `{{ name }}` outputs.

    Most prompts look like that (`Summarise: {{ .t2 }}`). Jinja renders them as the text plus
    `str(finalize(value))` of each name, but builds a fresh context (several dicts and sets)
    per render: about 8 us, a tenth of the engine's own cost per model call. Anything else
    (filters, attributes, statements, constants) returns None and renders through Jinja.
    """
    parts: list[tuple[bool, str]] = []
    for node in _ENV.parse(jinja_source).body:
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
            try:
                check_source(source)
                jinja_source = _go_to_jinja(source)
                self._compiled = _ENV.from_string(jinja_source)
            except TemplateSyntaxError as exc:
                raise TemplateError(
                    f"template does not parse (line {exc.lineno}): {exc.message}"
                ) from exc
            except SecurityError as exc:
                raise TemplateError(f"template not allowed: {exc}") from None
            except RecursionError:
                raise TemplateError("template not allowed: it nests too deeply") from None
            self._parts = _simple_parts(jinja_source)

    def _render_simple(self, variables: dict[str, Any]) -> str | None:
        """The fast path's text, or None to let Jinja render (and report any problem) as usual."""
        out = []
        for is_name, text in self._parts:  # type: ignore[union-attr]
            if not is_name:
                out.append(text)
                continue
            if text not in variables:  # a global, or missing: Jinja knows what to do
                return None
            try:
                out.append(str(_finalize(variables[text])))
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
        token = _range_budget.set(0)
        try:
            return self._compiled.render(variables)
        except UndefinedError as exc:
            raise TemplateError(
                f"{_undefined_message(exc)}; available variables: {', '.join(sorted(variables))}",
                task_id=task_id,
                field=field,
            ) from None
        except SecurityError as exc:
            raise TemplateError(
                f"template not allowed: {exc}", task_id=task_id, field=field
            ) from None
        except TemplateError:
            raise
        except Exception as exc:  # a filter or value that fails while rendering
            raise TemplateError(f"template failed: {exc}", task_id=task_id, field=field) from exc
        finally:
            _range_budget.reset(token)


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
    from jinja2 import meta

    if "{{" not in source and "{%" not in source:
        return set()
    return set(meta.find_undeclared_variables(_ENV.parse(_go_to_jinja(source))))
