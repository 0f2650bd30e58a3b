"""Make the OpenAPI document tell the truth about failures: every status a route can answer.

FastAPI documents the success status and its own 422; the server answers more (a bad body 400,
a missing token 401, an unknown id 404, a too-large body 413, the run limiter 429, a failing
model 502/504 …), always in one shape: `{"error": {"message", "type", "code", …}}`.
`declare_errors` adds each of those statuses to the operations that can answer it, with that
shape, so generated clients and contract tests (schemathesis) know what to expect.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA", "declare_errors"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "string"},
                "field": {"type": "string"},
                "chain_id": {"type": "string"},
                "task_id": {"type": "string"},
                "run_id": {"type": "string"},
            },
            "additionalProperties": True,
        }
    },
    "additionalProperties": True,
}

_MEANING = {
    "400": "The request is malformed: invalid JSON, a bad input or chain text (names the field).",
    "401": "`server.api_token` is set and the bearer token is missing or wrong.",
    "404": "No such route, chain, run, hook or activity record.",
    "405": "The method is not allowed on this path.",
    "409": "Conflicts with the current state (a name in use, a run not resumable …).",
    "413": "The body is over `server.max_body_bytes`.",
    "415": "The body is not JSON.",
    "422": "The request or the chain is well-formed but invalid, or the run was stopped by "
    "its chain's own logic (raise_error, max_steps, no branch matches; with runId and state).",
    "429": "`server.max_concurrent_runs` runs are in flight; see Retry-After.",
    "500": "A bug in taskengine (never the client's input); the log has the request id.",
    "502": "The model or a hook the chain calls failed.",
    "504": "The run, the model or a hook timed out (`limits.run_timeout`, a task's timeout).",
}

#: statuses any route can answer (middleware, routing, request validation, a bug)
_EVERY_ROUTE = ("400", "401", "404", "405", "413", "422", "500")
#: statuses of routes that change stored state
_WRITES = ("409", "415")
#: statuses of routes that run a chain or call a model
_RUNS = ("409", "429", "502", "504")
_RUN_PATHS = ("/tasks", "/execute", "/embed", "/openai/", "/runs/")


def declare_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error shape and every status each operation can answer; returns `schema`."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or method.startswith("x-"):
                continue
            statuses = list(_EVERY_ROUTE)
            if method in ("post", "put", "patch", "delete"):
                statuses += _WRITES
            if path.startswith(_RUN_PATHS) and method != "get":
                statuses += _RUNS
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses[status] = {
                    "description": _MEANING[status],
                    "content": {"application/json": {"schema": ref}},
                }
    return schema
