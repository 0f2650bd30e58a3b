"""What describes a remote hook: one validated model (`RemoteHookConfig`) and its runtime value.

`RemoteHookFields` declares the fields every description of a remote hook shares (the settings
entry `remote_hooks:`, a record registered over HTTP); `RemoteHookConfig` validates them for the
API and for mappings; `RemoteHook` is what a `RemoteHookRepo` calls, built from any of them by
`RemoteHook.from_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taskengine.empty import empty_dict
from taskengine.errors import HookError
from taskengine.hooks.base import check_hook_name

__all__ = ["RemoteHook", "RemoteHookConfig", "RemoteHookFields", "parse_seconds", "safe_url"]

#: Seconds a fetched OpenAPI document is reused, unless a hook says otherwise.
DEFAULT_SCHEMA_TTL = 300.0


def parse_seconds(value: Any) -> float:
    """Seconds from a number or a Go-style duration ("10s", "1m30s", "500ms")."""
    from taskengine.chain.duration import parse_duration

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. '10s', '500ms')")
    return seconds


def _check_url(url: str) -> str:
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"remote hook url must be an http(s) URL, got {safe_url(url)!r}")
    return str(url).strip().rstrip("/")


def safe_url(url: str) -> str:
    """The URL without user info or query string, fit for messages."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RemoteHookFields(BaseModel):
    """The fields of a remote hook, declared once; subclasses add `timeout` and their checks.

    A description without `schema_ttl` (a settings entry) gets `DEFAULT_SCHEMA_TTL`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(..., description="Hook name; its tools are called `name.<operationId>`.")
    url: str = Field(..., description="Base URL serving /openapi.json.")
    headers: dict[str, str] = Field(
        default_factory=empty_dict, repr=False, description="Sent on every call; never shown."
    )
    inject_body: dict[str, Any] = Field(
        default_factory=empty_dict,
        repr=False,
        description="JSON body properties added to every call.",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds per HTTP call.")


class RemoteHookConfig(RemoteHookFields):
    """A remote hook registered over HTTP or given as a mapping (header values already expanded)."""

    timeout: float = Field(10.0, gt=0, description="Seconds (or '10s') per HTTP call.")
    schema_ttl: float = Field(
        DEFAULT_SCHEMA_TTL, ge=0, description="Seconds the OpenAPI document is cached."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_hook_name(value)
        except HookError as exc:
            raise ValueError(exc.message) from None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("timeout", "schema_ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_seconds(value)


@dataclass(slots=True, frozen=True)
class RemoteHook:
    """A remote OpenAPI service used as hook `name`; secrets stay out of its repr."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    inject_body: dict[str, Any] = field(default_factory=dict, repr=False)
    timeout: float = 10.0
    schema_ttl: float = DEFAULT_SCHEMA_TTL

    def __post_init__(self) -> None:
        check_hook_name(self.name)
        try:
            object.__setattr__(self, "url", _check_url(self.url))
        except ValueError as exc:
            raise HookError(f"hook {self.name!r}: {exc}", hook=self.name) from None
        if not self.timeout > 0:
            raise HookError(f"hook {self.name!r}: timeout must be > 0", hook=self.name)

    @classmethod
    def from_config(cls, config: RemoteHookFields | Mapping[str, Any]) -> RemoteHook:
        """The hook a description (settings entry, API record, mapping) stands for."""
        if not isinstance(config, RemoteHookFields):
            config = RemoteHookConfig.model_validate(config)
        return cls(
            name=config.name,
            url=config.url,
            headers=dict(config.headers),
            inject_body=dict(config.inject_body),
            timeout=config.timeout,
            schema_ttl=getattr(config, "schema_ttl", DEFAULT_SCHEMA_TTL),
        )
