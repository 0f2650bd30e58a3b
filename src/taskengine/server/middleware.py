"""The server's one ASGI middleware: request id, bearer auth, body size limit, last-resort 500.

Written as plain ASGI (not `BaseHTTPMiddleware`) so streamed responses pass through untouched
and the per-request cost stays a few attribute lookups. It sets `current_request_id` for the
whole request, so activity events of a run tie to the HTTP request that started it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from taskengine.activity import current_request_id
from taskengine.ids import new_id
from taskengine.server.auth import PUBLIC_PATHS, bearer_ok
from taskengine.server.errors import error_body

__all__ = ["REQUEST_ID_HEADER", "ServerMiddleware"]

logger = logging.getLogger("taskengine.server")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(raw: bytes | None) -> str:
    """The caller's request id when it is a sane token, else a fresh one."""
    if raw:
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            text = ""
        if _SAFE_ID.match(text):
            return text
    return new_id()


class ServerMiddleware:
    """Request ids, auth (when a token is set), the body limit, and JSON 500s for crashes."""

    def __init__(self, app: Any, *, api_token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_token = api_token or None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        rid = request_id_from(headers.get(b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode("ascii"))
        started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        token = current_request_id.set(rid)
        try:
            if (
                self.api_token
                and scope["path"] not in PUBLIC_PATHS
                and not _ui_path(scope["path"])
                and not bearer_ok(headers.get(b"authorization"), self.api_token)
            ):
                await _reply(send_with_id, 401, error_body(
                    "missing or invalid API token: send 'Authorization: Bearer <token>'",
                    "AuthenticationError", "unauthorized",
                ), extra=[(b"www-authenticate", b'Bearer realm="taskengine"')])  # fmt: skip
                return
            limit = self.max_body_bytes
            declared = headers.get(b"content-length")
            if declared is not None:
                try:
                    too_big = int(declared) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _reply(send_with_id, 413, _too_large(limit))
                    return
            await self.app(scope, _limited(receive, limit), send_with_id)
        except Exception as exc:
            if started and _client_left(exc):
                logger.debug("client left during %s %s", scope.get("method"), scope.get("path"))
                return
            logger.exception(
                "unhandled error serving %s %s", scope.get("method"), scope.get("path")
            )
            if not started:
                await _reply(send_with_id, 500, error_body(
                    "internal server error (see the server log for request id " + rid + ")",
                    "InternalServerError", "internal_error",
                ))  # fmt: skip
            else:
                raise
        finally:
            current_request_id.reset(token)


def _ui_path(path: str) -> bool:
    """The inspector checks the same token itself (header or login cookie), so a browser can sign in."""
    return path == "/ui" or path.startswith("/ui/")


def _client_left(exc: Exception) -> bool:
    """True for the errors a response write raises once the client has disconnected."""
    from starlette.requests import ClientDisconnect

    return isinstance(exc, (ClientDisconnect, OSError))


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", ())}


def _too_large(limit: int) -> dict[str, Any]:
    return error_body(
        f"request body is larger than {limit} bytes (server.max_body_bytes)",
        "PayloadTooLargeError",
        "payload_too_large",
    )


def _limited(receive: Any, limit: int) -> Any:
    """Wrap `receive` so a streamed body (no or a false Content-Length) stops at the limit."""
    seen = 0

    async def receive_limited() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                from starlette.exceptions import HTTPException

                # FastAPI re-raises HTTPException from body parsing; our handler shapes it.
                raise HTTPException(
                    413, f"request body is larger than {limit} bytes (server.max_body_bytes)"
                )
        return message

    return receive_limited


async def _reply(
    send: Any, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *(extra or ()),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": payload})
