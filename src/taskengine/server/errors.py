"""One JSON error shape for every failure: `{"error": {"message", "type", "code", ...}}`.

`status_for` maps the engine's exception tree onto HTTP statuses (a bad input is 400, a chain
that fails lint 422, a run stopped by its chain's own logic (`raise_error`, `max_steps`, no
branch matches) 422 with `runId` and the partial `state`, an LLM backend failure 502 or 504;
500 only for a bug in taskengine itself); `install_error_handlers`
makes FastAPI's own failures (unknown route, request validation) use the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskengine.errors import (
    ChainLoadError,
    ConflictError,
    DataConversionError,
    DefinitionError,
    HookError,
    LLMError,
    MaxStepsExceededError,
    NoBranchMatchError,
    NotFoundError,
    ParseError,
    ProviderNotConfiguredError,
    RaisedError,
    StepValidationError,
    TaskEngineError,
    TaskTimeoutError,
    TemplateError,
    TokenLimitError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import JSONResponse

__all__ = [
    "ApiError",
    "RunLimitError",
    "error_body",
    "error_response",
    "install_error_handlers",
    "status_for",
]


class ApiError(TaskEngineError):
    """An HTTP-level failure the server raises itself (401, 404 route, 413, 429 …)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type_name = type
        self.code = code
        self.headers = headers or {}
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type_name, "code": self.code, **self.extra}


class RunLimitError(ApiError):
    """`server.max_concurrent_runs` runs are in flight: come back later (429)."""

    def __init__(self, limit: int, retry_after: int = 1) -> None:
        super().__init__(
            429,
            f"{limit} runs are already in flight (server.max_concurrent_runs); retry later",
            type="RateLimitError",
            code="too_many_runs",
            headers={"Retry-After": str(retry_after)},
        )


#: A run that failed by its chain's own logic: the request was served, the chain said no (422).
CHAIN_LOGIC_ERRORS = (RaisedError, MaxStepsExceededError, NoBranchMatchError)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TaskTimeoutError):
        return True
    if isinstance(exc, LLMError):
        if exc.status_code in (408, 504):
            return True
        text = exc.message.lower()
        if "timed out" in text or "timeout" in text:
            return True
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__
    return False


def status_for(exc: TaskEngineError) -> int:
    """The HTTP status that fits an engine error."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, (DataConversionError, ChainLoadError)):
        return 400
    if isinstance(exc, (DefinitionError, TemplateError, StepValidationError, TokenLimitError)):
        return 422
    if isinstance(exc, CHAIN_LOGIC_ERRORS):
        return 422
    if isinstance(exc, ProviderNotConfiguredError) and exc.provider:
        return 422  # the request or chain names a provider this server does not have
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if _is_timeout(exc):
        return 504
    # The model, or a hook the chain calls, is an upstream service: its failure is a bad gateway.
    if isinstance(exc, (LLMError, ParseError, HookError)):
        return 502
    return 500


def error_body(message: str, type: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "code": code, **extra}}


def error_response(
    status: int,
    message: str,
    *,
    type: str,
    code: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse(
        error_body(message, type, code, **extra), status_code=status, headers=headers
    )


def engine_error_response(exc: TaskEngineError) -> JSONResponse:
    """The response for an engine error: its `to_dict()` under `error`, with a fitting status."""
    from starlette.responses import JSONResponse

    status = status_for(exc)
    body = exc.to_dict()
    if status == 504 and not isinstance(exc, ApiError):
        body["code"] = "timeout"
    headers = exc.headers if isinstance(exc, ApiError) else None
    answer: dict[str, Any] = {"error": body}
    if isinstance(exc, CHAIN_LOGIC_ERRORS) and exc.run_result is not None:
        # the run is recorded: say which one, and what it did before it stopped
        partial = exc.run_result.to_dict()
        partial.pop("error", None)
        answer.update(partial)
    return JSONResponse(answer, status_code=status, headers=headers)


_HTTP_TYPES = {
    400: ("BadRequestError", "bad_request"),
    401: ("AuthenticationError", "unauthorized"),
    403: ("PermissionDeniedError", "forbidden"),
    404: ("NotFoundError", "not_found"),
    405: ("MethodNotAllowedError", "method_not_allowed"),
    413: ("PayloadTooLargeError", "payload_too_large"),
    415: ("UnsupportedMediaTypeError", "unsupported_media_type"),
    429: ("RateLimitError", "too_many_requests"),
}


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    problems = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            where, rest = loc[0], loc[1:]
        else:
            where, rest = "", loc
        path = ".".join(rest)
        problems.append({"in": where, "path": path, "message": str(err.get("msg", "invalid"))})
    text = "; ".join(
        f"{p['in']}{'.' if p['in'] and p['path'] else ''}{p['path']}: {p['message']}"
        for p in problems
    )
    return f"invalid request: {text}" if text else "invalid request", problems


def install_error_handlers(app: FastAPI) -> None:
    """Route engine errors, HTTP exceptions and request validation through the one shape."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def on_engine_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TaskEngineError)
        return engine_error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        type_name, code = _HTTP_TYPES.get(status, ("HTTPError", f"http_{status}"))
        if status == 404 and exc.detail in (None, "Not Found"):
            message = f"no route for {request.method} {request.url.path}"
        elif status == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        elif status == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer when decoding fails for any reason but bad syntax (deep nesting)
            return error_response(
                400, "the request body cannot be decoded (is it nested too deeply?)",
                type="BadRequestError", code="invalid_json", field="body",
            )  # fmt: skip
        else:
            message = str(exc.detail)
        return error_response(status, message, type=type_name, code=code, headers=exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if broken is not None:
            detail = (broken.get("ctx") or {}).get("error") or "JSON decode error"
            return error_response(
                400, f"the request body is not valid JSON: {detail}", type="BadRequestError",
                code="invalid_json",
            )  # fmt: skip
        message, problems = _validation_message(errors)
        first = problems[0] if problems else {"in": "body", "path": ""}
        field = first["path"] or first["in"] or "body"
        return error_response(
            422, message, type="RequestValidationError", code="invalid_request", problems=problems,
            field=field,
        )  # fmt: skip

    app.add_exception_handler(TaskEngineError, on_engine_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
