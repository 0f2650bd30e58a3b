"""Built-in hooks users reach for first: `echo` (handy in tests) and `http` (allow-listed requests).

Both are ordinary local hooks in their own `LocalHookRegistry`, so they get schemas, argument
validation and tool exposure like any user hook:

- `echo` (tool `echo`): returns its input unchanged, with its DataType, or its `text` argument.
- `http` (tool `request`): one HTTP request to a host on the allow-list given at construction;
  an empty allow-list refuses every call. JSON responses become JSON, anything else a string.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

from taskengine.datatypes import DataType, to_jsonable
from taskengine.errors import HookError
from taskengine.hooks._session import SharedSession
from taskengine.hooks.base import HookContext, HookOutput, excerpt
from taskengine.hooks.local import LocalHookRegistry

__all__ = ["BuiltinHooks", "builtin_hooks"]

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_MAX_REDIRECTS = 5


class BuiltinHooks(LocalHookRegistry):
    """The `echo` and `http` hooks; close it (`aclose`) to release the http session.

    Args:
        allowed_hosts: Hosts the `http` hook may call: `example.com`, `api.example.com:8443`,
            `*.example.com` (any subdomain), or `*` (anything; use with care).
        timeout: Seconds per `http` request (capped by the task's timeout).
    """

    def __init__(self, allowed_hosts: Iterable[str] = (), *, timeout: float = 10.0) -> None:
        super().__init__()
        self.allowed_hosts = tuple(h.strip().lower() for h in allowed_hosts if h and h.strip())
        self.timeout = float(timeout)
        self._http = SharedSession()
        self.register("echo", _echo, name="echo", blocking=False, lazy_schema=True)
        self.register("http", self._request, name="request", lazy_schema=True)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> BuiltinHooks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def host_allowed(self, url: str) -> bool:
        """Whether `url` is http(s) and its host (and port, if the entry names one) is allowed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        host = parts.hostname.lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        for entry in self.allowed_hosts:
            if entry == "*":
                return True
            name, _, want_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
            if want_port and want_port != str(port):
                continue
            if name == host or (name.startswith("*.") and host.endswith(name[1:])):
                return True
        return False

    async def _request(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        context: HookContext | None = None,
    ) -> Any:
        """Send one HTTP request to an allow-listed host and return the response body.

        Args:
            url: Absolute http(s) URL.
            method: GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS.
            body: Request body; objects and arrays are sent as JSON, text as is.
            headers: Extra request headers.
        """
        verb = _checked_method(method)
        if not self.allowed_hosts:
            raise HookError(
                "http: no hosts are allowed; pass allowed_hosts=[…] to BuiltinHooks "
                "(or `allowed_http_hosts` in the config) to enable the http hook"
            )
        send_headers = {str(k): str(v) for k, v in (headers or {}).items()}
        if context is not None:
            send_headers.setdefault("Idempotency-Key", context.idempotency_key)
        data = _encode_body(body, send_headers)
        timeout = self.timeout
        if context is not None and context.timeout and math.isfinite(context.timeout):
            timeout = min(timeout, context.timeout)
        current = url
        for _hop in range(_MAX_REDIRECTS + 1):
            if not self.host_allowed(current):
                raise HookError(f"http: host of {_shown(current)} is not on the allow-list")
            status, location, content_type, raw = await self._send(
                verb, current, data, send_headers, timeout
            )
            if status in (301, 302, 303, 307, 308) and location:
                current = urljoin(current, location)
                if status not in (307, 308) and verb != "HEAD":
                    verb, data = "GET", None
                continue
            return _decode_response(verb, current, status, content_type, raw)
        raise HookError(f"http: more than {_MAX_REDIRECTS} redirects starting at {_shown(url)}")

    async def _send(
        self, verb: str, url: str, data: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, str | None, str, bytes]:
        """One request without following redirects: status, Location, Content-Type, body."""
        import aiohttp

        session = await self._http.get()
        try:
            async with session.request(
                verb,
                url,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                location = response.headers.get("Location")
                content_type = response.headers.get("Content-Type", "")
                return response.status, location, content_type, await response.read()
        except TimeoutError as exc:
            raise HookError(f"http: {verb} {_shown(url)} timed out after {timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise HookError(
                f"http: {verb} {_shown(url)} failed: {type(exc).__name__}: {exc}"
            ) from exc


def _checked_method(method: str) -> str:
    verb = method.strip().upper()
    if verb not in _METHODS:
        raise HookError(
            f"http: unsupported method {method!r}; use one of {', '.join(sorted(_METHODS))}"
        )
    return verb


def _encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    """The request bytes (JSON for objects and arrays); sets a Content-Type unless given."""
    if body is None or body == "":
        return None
    if isinstance(body, str):
        if not _has_header(headers, "content-type"):
            headers["Content-Type"] = "application/json" if _is_json(body) else "text/plain"
        return body.encode()
    if not _has_header(headers, "content-type"):
        headers["Content-Type"] = "application/json"
    return json.dumps(to_jsonable(body)).encode()


def _decode_response(verb: str, url: str, status: int, content_type: str, raw: bytes) -> Any:
    """JSON for a JSON answer, text otherwise; an HTTP error status becomes a HookError."""
    text = raw.decode("utf-8", errors="replace")
    if status >= 400:
        detail = f": {excerpt(text)}" if text.strip() else ""
        raise HookError(f"http: {verb} {_shown(url)} returned HTTP {status}{detail}")
    if "json" in content_type.lower() and text.strip():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def builtin_hooks(
    allowed_hosts: Iterable[str] = (), *, timeout: float = 10.0
) -> list[BuiltinHooks]:
    """The built-in hook providers to put into a `HookRegistry` (one today: echo + http)."""
    return [BuiltinHooks(allowed_hosts, timeout=timeout)]


def _echo(input: Any = None, input_type: DataType = DataType.ANY, text: str | None = None) -> Any:
    """Return the task input unchanged, or `text` when given.

    Args:
        text: Text to return instead of the input.
    """
    if text is not None:
        return text
    return HookOutput(input, input_type)


def _has_port(entry: str) -> bool:
    host, sep, port = entry.rpartition(":")
    return bool(sep and host and port.isdigit())


def _has_header(headers: dict[str, str], name: str) -> bool:
    return any(k.lower() == name for k in headers)


def _is_json(text: str) -> bool:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _shown(url: str) -> str:
    """The URL without user info or query (those may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
