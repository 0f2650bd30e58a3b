"""Type hints and docstrings to JSON Schema, and schema-driven coercion of string arguments.

A local hook's parameters become a pydantic model (built with `create_model`), whose JSON Schema is
what the model sees and whose validation runs before the function does. Chain arguments arrive as
rendered strings, so `coerce_string_args` turns them into the JSON values the schema asks for.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from taskengine.errors import HookError

__all__ = [
    "INJECTED_PARAMS",
    "FunctionSpec",
    "clean_schema",
    "coerce_string_args",
    "format_validation_error",
    "function_spec",
    "inline_refs",
    "parse_docstring",
]

#: Parameter names the engine fills in itself; they never appear in a tool's schema.
INJECTED_PARAMS = frozenset({"input", "input_type", "context"})

_ARGS_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):\s*$"
)
_OTHER_HEADER = re.compile(
    r"^(Returns?|Yields?|Raises|Examples?|Notes?|Attributes|See Also|Todo|Warnings?|References):\s*$"
)
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]+\s+)?(\w+):\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style (or reST `:param:`) docstring into its description and per-arg texts."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    base_indent = 0
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 0 and _ARGS_HEADER.match(stripped):
            section, current, base_indent = "args", None, -1
            continue
        if indent == 0 and _OTHER_HEADER.match(stripped):
            section, current = "other", None
            continue
        rest = _REST_PARAM.match(stripped)
        if rest:
            section, current = "rest", rest.group(1)
            params[current] = rest.group(2).strip()
            continue
        if section == "summary":
            summary.append(line)
        elif section == "args":
            if not stripped:
                continue
            if base_indent < 0:
                base_indent = indent
            match = _ARG_LINE.match(stripped) if indent <= base_indent else None
            if match:
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif section == "rest" and current is not None and stripped and indent > 0:
            params[current] = f"{params[current]} {stripped}".strip()
    return "\n".join(summary).strip(), params


@dataclass(slots=True, frozen=True)
class FunctionSpec:
    """What a Python function offers as a tool: its argument model, schema and injected params."""

    model: type[BaseModel]
    parameters: dict[str, Any]
    description: str
    injected: frozenset[str]
    fields: tuple[str, ...]


def function_spec(
    func: Callable[..., Any], *, title: str, description: str | None = None
) -> FunctionSpec:
    """Build the argument model and JSON Schema of `func` (raises HookError for unusable signatures)."""
    try:
        signature = inspect.signature(func, eval_str=True)
    except (NameError, TypeError, SyntaxError) as exc:
        raise HookError(f"cannot read the type hints of {title}: {exc}") from exc
    summary, arg_docs = parse_docstring(inspect.getdoc(func))
    fields: dict[str, Any] = {}
    injected: set[str] = set()
    extra: Literal["allow", "forbid"] = "forbid"
    for name, param in signature.parameters.items():
        if name in INJECTED_PARAMS:
            injected.add(name)
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise HookError(
                f"{title}: parameter {name!r} must be passable by keyword (no *args or positional-only)"
            )
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        doc = arg_docs.get(name)
        fields[name] = (annotation, Field(default, description=doc) if doc else default)
    try:
        model = create_model(
            _model_name(title),
            __config__=ConfigDict(
                extra=extra, arbitrary_types_allowed=True, coerce_numbers_to_str=True
            ),
            **fields,
        )
        schema = model.model_json_schema()
    except Exception as exc:  # pydantic raises several kinds for unsupported annotations
        raise HookError(f"{title}: cannot build a JSON Schema from its type hints: {exc}") from exc
    parameters = clean_schema(inline_refs(schema))
    parameters.setdefault("properties", {})
    return FunctionSpec(
        model=model,
        parameters=parameters,
        description=description if description is not None else summary,
        injected=frozenset(injected),
        fields=tuple(fields),
    )


def _model_name(title: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", title) if part) + "Args"


# --- schema helpers ---------------------------------------------------------------------------

_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


def inline_refs(schema: Any, root: Any = None, *, _stack: tuple[str, ...] = ()) -> Any:
    """Replace local `$ref`s by what they point at; a recursive ref becomes an open object.

    Small model servers handle flat schemas better than `$defs`, so tools are offered inlined.
    """
    root = schema if root is None else root
    if isinstance(schema, list):
        return [inline_refs(item, root, _stack=_stack) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if ref in _stack:
            return {"type": "object", **inline_refs(siblings, root, _stack=_stack)}
        target = _pointer(root, ref)
        resolved = inline_refs(target, root, _stack=(*_stack, ref))
        if siblings:
            resolved = {**resolved, **inline_refs(siblings, root, _stack=_stack)}
        return resolved
    out = {}
    for key, value in schema.items():
        if key in ("$defs", "definitions") and schema is root:
            continue
        out[key] = inline_refs(value, root, _stack=_stack)
    return out


def _pointer(root: Any, ref: str) -> Any:
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise HookError(f"schema reference {ref!r} points at nothing")
    return node


def clean_schema(schema: Any) -> Any:
    """Drop pydantic's generated `title`s (noise to a model) without touching property names."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [clean_schema(v) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: clean_schema(v) for k, v in value.items()}
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            out[key] = clean_schema(value)
        else:
            out[key] = value
    return out


def _accepts_string(schema: Any) -> bool:
    """Whether a string is a plausible final value for this (property) schema."""
    if not isinstance(schema, dict) or not schema:
        return True
    kind = schema.get("type")
    if kind is not None:
        return "string" in (kind if isinstance(kind, list) else [kind])
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return any(_accepts_string(b) for b in branches)
    if "enum" in schema:
        return any(isinstance(v, str) for v in schema["enum"])
    if "const" in schema:
        return isinstance(schema["const"], str)
    return not any(k in schema for k in ("properties", "items", "allOf"))


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce_string_args(values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Turn rendered string args into the JSON values `schema` expects ("3" → 3, "[1]" → [1]).

    Strings stay strings where the schema accepts a string. An empty string for a non-string
    parameter counts as "not given", so an optional template that rendered empty is left out.
    """
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        prop = props.get(key)
        if not isinstance(value, str) or prop is None or _accepts_string(prop):
            out[key] = value
            continue
        text = value.strip()
        if not text:
            continue
        try:
            out[key] = json.loads(text)
            continue
        except ValueError:
            pass
        lowered = text.lower()
        kinds = prop.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "boolean" in kinds and lowered in _TRUE | _FALSE:
            out[key] = lowered in _TRUE
        else:
            out[key] = value
    return out


def format_validation_error(exc: ValidationError) -> tuple[str, str | None]:
    """A one-line summary of pydantic errors and the first offending field name."""
    parts = []
    first_field: str | None = None
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if first_field is None and loc:
            first_field = loc
        if err["type"] == "missing":
            parts.append(f"{loc}: is required")
        elif err["type"] == "extra_forbidden":
            parts.append(f"{loc}: is not a parameter of this tool")
        else:
            shown = repr(err.get("input"))
            shown = shown if len(shown) <= 60 else shown[:59] + "…"
            parts.append(f"{loc}: {err['msg']} (got {shown})")
    return "; ".join(parts), first_field
