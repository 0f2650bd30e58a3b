"""`mcp_servers:` settings: a stdio server (`command`, `env`, `cwd`) or a streamable-HTTP one (`url`, `headers`).

Header and env values may use `${secret:…}`. Header values, env values whose name looks like a
credential (`…TOKEN`, `…KEY`, `…SECRET`, `…PASSWORD`, `…AUTH…`, `…CREDENTIAL…`) and every
`${secret:…}` value are kept out of logs, run state, activity and the model's view.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskengine.empty import empty_dict
from taskengine.seconds import Seconds as _Seconds

__all__ = ["McpServerSettings"]


#: env variable names whose values are credentials
_SECRET_ENV = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|AUTH|CREDENTIAL|COOKIE", re.I)


class McpServerSettings(BaseModel):
    """One MCP server whose tools are offered as hook `name`: `name.<tool>`."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(..., pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="Hook name of its tools.")
    command: list[str] | None = Field(
        None, description="stdio server: the program and its arguments."
    )
    env: dict[str, str] = Field(
        default_factory=empty_dict, description="stdio server: extra environment; never shown."
    )
    cwd: str | None = Field(None, description="stdio server: working directory.")
    url: str | None = Field(None, description="Streamable-HTTP server: its endpoint URL.")
    headers: dict[str, str] = Field(
        default_factory=empty_dict, description="HTTP server: sent on every request; never shown."
    )
    timeout: _Seconds = Field(30.0, gt=0, description="Seconds one tool call may take.")
    connect_timeout: _Seconds = Field(
        30.0, gt=0, description="Seconds to start the server and finish the MCP handshake."
    )
    tools_ttl: _Seconds = Field(
        300.0, ge=0, description="Seconds the server's tool list is reused before listing again."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("set exactly one of 'command' (stdio server) or 'url' (HTTP server)")
        if self.command is not None:
            if not self.command or not all(isinstance(p, str) and p for p in self.command):
                raise ValueError("'command' must be a non-empty list of strings")
            if self.headers:
                raise ValueError("'headers' apply to 'url' servers; a stdio server takes 'env'")
        else:
            parts = urlsplit(str(self.url))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("'url' must be an http:// or https:// URL")
            if self.env or self.cwd:
                raise ValueError("'env' and 'cwd' apply to 'command' servers")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def secret_values(self) -> list[str]:
        """Header values (and the token of `Bearer x`) and credential-like env values."""
        found: set[str] = set()
        env = [v for k, v in self.env.items() if _SECRET_ENV.search(k)]
        for value in [*self.headers.values(), *env]:
            found.add(value)
            _scheme, _, token = value.partition(" ")
            if token.strip():
                found.add(token.strip())
        return sorted((v for v in found if len(v) >= 4), key=len, reverse=True)
