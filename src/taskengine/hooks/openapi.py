"""OpenAPI 3.0 / 3.1 documents to tools: one tool per operation that has an `operationId`.

A tool's parameters are the operation's path and query parameters plus the properties of its
JSON request body (or one `body` parameter when the body is not an object, or when its property
names clash with a parameter). Body properties the hook injects are removed from the schema.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from taskengine.datatypes import to_display, to_jsonable
from taskengine.errors import HookError
from taskengine.hooks.base import did_you_mean
from taskengine.hooks.schema import clean_schema, coerce_string_args, inline_refs

__all__ = ["ParamSlot", "RemoteOperation", "parse_openapi"]

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# OpenAPI keywords that JSON Schema validators and model servers do not know.
_OPENAPI_ONLY = ("discriminator", "xml", "externalDocs", "example", "nullable")
_NESTED_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NESTED_MAPS = ("properties", "patternProperties")
_NESTED_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


@dataclass(slots=True, frozen=True)
class ParamSlot:
    """Where a tool argument goes in the HTTP request: `path`, `query`, `body` (a property) or `body_whole`."""

    location: str
    wire_name: str


@dataclass(slots=True)
class RemoteOperation:
    """One callable operation of a remote hook."""

    operation_id: str
    method: str
    path: str
    description: str
    parameters: dict[str, Any]
    slots: dict[str, ParamSlot]
    has_body: bool
    _validator: Any = field(default=None, repr=False)

    def validator(self) -> Any:
        """A cached jsonschema validator for the tool's parameters (imported lazily: it is slow)."""
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.parameters)
        return self._validator

    def arguments(
        self,
        hook_name: str,
        call_args: Mapping[str, str] | None,
        args: Mapping[str, Any] | None,
        input: Any,
    ) -> dict[str, Any]:
        """Coerce and validate arguments against the schema, before any request is made.

        A parameter named `input` that no argument sets gets the task input.
        """
        where = f"hook {hook_name!r} tool {self.operation_id!r}"
        values = coerce_string_args(call_args, self.parameters) if call_args else {}
        if args:
            values.update(args)
        if "input" in self.slots and "input" not in values and input is not None:
            wants_text = self.parameters["properties"].get("input", {}).get("type") == "string"
            values["input"] = to_display(input) if wants_text else to_jsonable(input)
        unknown = sorted(set(values) - set(self.slots))
        if unknown:
            raise HookError(
                f"{where}: invalid arguments: {unknown[0]}: is not a parameter of this tool"
                f"{did_you_mean(unknown[0], self.slots)}",
                hook=hook_name,
                tool=self.operation_id,
                field=unknown[0],
            )
        values = to_jsonable(values)
        try:
            errors = sorted(self.validator().iter_errors(values), key=lambda e: list(e.path))
        except Exception as exc:  # a schema jsonschema cannot evaluate
            raise HookError(
                f"{where}: its parameter schema is unusable: {exc}",
                hook=hook_name,
                tool=self.operation_id,
            ) from exc
        if errors:
            parts = []
            for err in errors[:5]:
                loc = ".".join(str(p) for p in err.path)
                parts.append(f"{loc}: {err.message}" if loc else err.message)
            first = ".".join(str(p) for p in errors[0].path) or None
            raise HookError(
                f"{where}: invalid arguments: {'; '.join(parts)}",
                hook=hook_name,
                tool=self.operation_id,
                field=first,
            )
        return values

    def build_request(
        self, base_url: str, values: Mapping[str, Any], inject_body: Mapping[str, Any]
    ) -> tuple[str, list[tuple[str, str]], Any]:
        """URL (path params substituted), query pairs and JSON body for validated `values`."""
        path = self.path
        query: list[tuple[str, str]] = []
        body: dict[str, Any] | None = {} if self.has_body else None
        whole: Any = None
        for name, value in values.items():
            slot = self.slots[name]
            if slot.location == "path":
                path = path.replace("{" + slot.wire_name + "}", quote(_scalar(value), safe=""))
            elif slot.location == "query":
                if value is None:
                    continue
                items = value if isinstance(value, list) else [value]
                query.extend((slot.wire_name, _scalar(item)) for item in items)
            elif slot.location == "body" and body is not None:
                body[slot.wire_name] = value
            else:
                whole = value
        if whole is not None:
            body = {**whole, **inject_body} if isinstance(whole, dict) else whole
        elif body is not None:
            body.update(inject_body)
        return base_url + path, query, body


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def parse_openapi(
    doc: Any, *, hook_name: str, inject_keys: Collection[str] = ()
) -> dict[str, RemoteOperation]:
    """Every operation with an `operationId`, as a tool whose schema hides `inject_keys`."""
    if not isinstance(doc, Mapping):
        raise HookError(
            f"hook {hook_name!r}: the OpenAPI document is not a JSON object", hook=hook_name
        )
    version = str(doc.get("openapi", ""))
    if not version.startswith("3."):
        found = (
            f"swagger {doc['swagger']}" if "swagger" in doc else (version or "no 'openapi' field")
        )
        raise HookError(
            f"hook {hook_name!r}: expected an OpenAPI 3.0 or 3.1 document, found {found}",
            hook=hook_name,
        )
    is_30 = version.startswith("3.0")
    operations: dict[str, RemoteOperation] = {}
    for path, raw_item in (doc.get("paths") or {}).items():
        item = _deref(raw_item, doc)
        if not isinstance(item, Mapping):
            continue
        shared = [_deref(p, doc) for p in item.get("parameters") or ()]
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, Mapping) or not op.get("operationId"):
                continue
            op_id = str(op["operationId"])
            if op_id in operations:
                continue  # a duplicated operationId: the first one wins
            built = _operation(doc, path, method, op, shared, is_30, set(inject_keys))
            if built is not None:
                operations[op_id] = built
    return operations


def _deref(node: Any, doc: Any) -> Any:
    """Follow a `$ref` chain at the top of `node` (parameters, request bodies, path items)."""
    seen: set[str] = set()
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            return {}
        seen.add(ref)
        node = inline_refs({"$ref": ref}, doc)
    return node


def _operation(
    doc: Any,
    path: str,
    method: str,
    op: Mapping[str, Any],
    shared: list[Any],
    is_30: bool,
    inject: set[str],
) -> RemoteOperation | None:
    properties: dict[str, Any] = {}
    required: list[str] = []
    slots: dict[str, ParamSlot] = {}
    _add_path_and_query(doc, op, shared, is_30, properties, required, slots)
    has_body = _add_body(doc, op, is_30, inject, properties, required, slots)
    if has_body is None:
        return None  # form or binary bodies cannot be built from tool arguments
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": clean_schema({"properties": properties})["properties"],
    }
    if required:
        parameters["required"] = list(dict.fromkeys(required))
    text = [str(op[k]).strip() for k in ("summary", "description") if op.get(k)]
    description = "\n\n".join(dict.fromkeys(t for t in text if t))
    return RemoteOperation(
        operation_id=str(op["operationId"]),
        method=method.upper(),
        path=path,
        description=description,
        parameters=parameters,
        slots=slots,
        has_body=has_body,
    )


def _add_path_and_query(
    doc: Any,
    op: Mapping[str, Any],
    shared: list[Any],
    is_30: bool,
    properties: dict[str, Any],
    required: list[str],
    slots: dict[str, ParamSlot],
) -> None:
    """The operation's path and query parameters (its own override the path item's)."""
    params: dict[tuple[str, str], Mapping[str, Any]] = {}
    for raw in [*shared, *(_deref(p, doc) for p in op.get("parameters") or ())]:
        if isinstance(raw, Mapping) and raw.get("name") and raw.get("in"):
            params[(str(raw["in"]), str(raw["name"]))] = raw
    for (location, name), param in params.items():
        if location not in ("path", "query"):
            continue  # header and cookie parameters are the hook's business, not the model's
        schema = _json_schema(inline_refs(param.get("schema") or {"type": "string"}, doc), is_30)
        if param.get("description") and "description" not in schema:
            schema["description"] = str(param["description"])
        properties[name] = schema
        slots[name] = ParamSlot(location, name)
        if location == "path" or param.get("required"):
            required.append(name)


def _add_body(
    doc: Any,
    op: Mapping[str, Any],
    is_30: bool,
    inject: set[str],
    properties: dict[str, Any],
    required: list[str],
    slots: dict[str, ParamSlot],
) -> bool | None:
    """Add the JSON body's properties (or the whole body as `body`); whether there is a body.

    None: the body is not JSON (a form, a file), so the operation cannot be a tool.
    """
    body = _deref(op.get("requestBody"), doc)
    if not (isinstance(body, Mapping) and body.get("content")):
        return False
    media = _json_media(body["content"])
    if media is None:
        return None
    schema = _json_schema(inline_refs(media.get("schema") or {}, doc), is_30)
    schema = _without(schema, inject)
    props = schema.get("properties") if schema.get("type", "object") == "object" else None
    if isinstance(props, Mapping) and props and not (set(props) & set(properties)):
        for name, prop in props.items():
            if isinstance(prop, Mapping) and prop.get("readOnly"):
                continue
            properties[name] = prop
            slots[name] = ParamSlot("body", name)
        required.extend(
            r for r in schema.get("required") or () if r in slots and slots[r].location == "body"
        )
    elif props is None or props:
        properties["body"] = schema
        slots["body"] = ParamSlot("body_whole", "body")
        if body.get("required"):
            required.append("body")
    return True


def _json_media(content: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if "application/json" in content:
        return content["application/json"] or {}
    for media_type, media in content.items():
        if "json" in media_type:
            return media or {}
    return None


def _without(schema: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """Drop injected properties from an object schema (they are the hook's, not the model's)."""
    if not keys or not isinstance(schema.get("properties"), Mapping):
        return schema
    out = dict(schema)
    out["properties"] = {k: v for k, v in schema["properties"].items() if k not in keys}
    if "required" in schema:
        out["required"] = [r for r in schema["required"] if r not in keys]
        if not out["required"]:
            del out["required"]
    return out


def _json_schema(schema: Any, is_30: bool) -> Any:
    """OpenAPI schema object → plain JSON Schema (3.0's `nullable`, boolean exclusive bounds)."""
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _NESTED_LISTS and isinstance(value, list):
            out[key] = [_json_schema(v, is_30) for v in value]
        elif key in _NESTED_MAPS and isinstance(value, Mapping):
            out[key] = {k: _json_schema(v, is_30) for k, v in value.items()}
        elif key in _NESTED_ONE and isinstance(value, Mapping):
            out[key] = _json_schema(value, is_30)
        elif key not in _OPENAPI_ONLY:
            out[key] = copy.deepcopy(value)
    if "example" in schema and "examples" not in out:
        out["examples"] = [copy.deepcopy(schema["example"])]
    if is_30:
        if schema.get("nullable") is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif "anyOf" in out:
                out["anyOf"] = [*out["anyOf"], {"type": "null"}]
            elif "oneOf" in out:
                out["oneOf"] = [*out["oneOf"], {"type": "null"}]
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = out.get(bound)
            if isinstance(flag, bool):
                del out[bound]
                if flag and plain in out:
                    out[bound] = out.pop(plain)
    return out
