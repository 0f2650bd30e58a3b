"""Settings: one validated model from a YAML file, `TASKENGINE_*` variables and overrides.

Precedence, lowest first: defaults < the YAML file < environment variables < explicit
overrides (what the CLI passes). The file is `--config`, else `$TASKENGINE_CONFIG`, else
`./taskengine.yaml`. Variables map as `TASKENGINE_<KEY>` with `__` for nesting
(`TASKENGINE_SERVER__PORT=9000`), plus the plain names pinned in DESIGN.md (`TASKENGINE_MODEL`,
`TASKENGINE_PROVIDER`, `TASKENGINE_EMBED_MODEL`, `TASKENGINE_DB`, `TASKENGINE_API_TOKEN`).
String values in the file and in variables may use `${VAR}`, `${VAR:-default}` and
`${secret:name}`; `$${` is a literal `${`. Overrides are taken literally. Every problem is a
`ConfigError` naming the file (or variable), the key path and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from taskengine.empty import empty_dict, empty_list
from taskengine.engine.leases import DEFAULT_LEASE_TTL
from taskengine.errors import ConfigError
from taskengine.hooks.remote_config import RemoteHookFields
from taskengine.mcp.settings import McpServerSettings
from taskengine.observability.redaction import MASK, mask_by_path
from taskengine.providers.config import ProviderConfig
from taskengine.seconds import Seconds
from taskengine.workers.settings import QueueSettings

__all__ = [
    "ENV_PREFIX",
    "MASK",
    "PINNED_ENV",
    "ConfigProblem",
    "LimitsSettings",
    "LoggingSettings",
    "MetricsSettings",
    "OtelSettings",
    "PriceSettings",
    "RemoteHookSettings",
    "RetrySettings",
    "ServerSettings",
    "Settings",
    "aload_settings",
    "load_settings",
    "mask_settings",
    "parse_overrides",
]

ENV_PREFIX = "TASKENGINE_"
#: plain variable names pinned in DESIGN.md, mapped onto their settings key paths
PINNED_ENV: dict[str, tuple[str, ...]] = {
    "TASKENGINE_MODEL": ("default_model",),
    "TASKENGINE_PROVIDER": ("default_provider",),
    "TASKENGINE_EMBED_MODEL": ("default_embed_model",),
    "TASKENGINE_DB": ("db",),
    "TASKENGINE_API_TOKEN": ("server", "api_token"),
}
#: variables other parts of taskengine read; never settings keys, never warned about
_OTHER_ENV = {"TASKENGINE_CONFIG", "TASKENGINE_SECRET_KEY", "TASKENGINE_SECRET_KEY_FILE"}
SENSITIVE_KEYS = frozenset(
    {"api_key", "api_token", "token", "access_token", "password", "secret", "authorization"}
)
#: every value inside these mappings is injected into requests and treated as secret
_SECRET_CONTAINERS = frozenset({"headers", "inject_body"})


class _Section(BaseModel):
    # Built on first validation: a process that loads no configuration uses the defaults as
    # they are (`Settings.model_construct()`), and validating a configuration builds one
    # validator for `Settings` with its sections inside, not one more per section.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class RetrySettings(_Section):
    """Backoff of `retry_on_failure`: base and cap of the exponential delay, attempt cap."""

    base: Seconds = Field(0.1, ge=0, description="First retry delay in seconds.")
    max: Seconds = Field(10.0, ge=0, description="Longest delay between attempts in seconds.")
    max_attempts_cap: int = Field(
        10, ge=1, description="Upper bound on any task's retry_on_failure."
    )


class LimitsSettings(_Section):
    max_input_bytes: int = Field(1_000_000, ge=1, description="Largest run input accepted.")
    max_steps_default: int = Field(1000, ge=1, description="max_steps of chains that set none.")
    max_steps_cap: int = Field(
        10_000, ge=1, description="No run takes more steps than this, whatever its chain says."
    )
    run_timeout: Seconds | None = Field(None, gt=0, description="Seconds a whole run may take.")
    max_template_chars: int = Field(
        100_000, ge=1, description="Longest template source (prompt, print …) a chain may hold."
    )
    lease_ttl: Seconds = Field(
        DEFAULT_LEASE_TTL,
        gt=0,
        description="Seconds a crashed process keeps its runs before they read as interrupted.",
    )


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    api_token: str | None = Field(
        None, description="Bearer token required by every route but /health."
    )
    cors_origins: list[str] = Field(default_factory=empty_list)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1)
    max_concurrent_runs: int = Field(1000, ge=1, description="Beyond this the server answers 429.")
    keep_alive_timeout: Seconds = Field(
        75, gt=0, description="Seconds an idle keep-alive connection stays open (clients: less)."
    )
    shutdown_grace: Seconds = Field(
        10, ge=0, description="Seconds in-flight requests get to finish after SIGTERM."
    )


class PriceSettings(_Section):
    """Price of a model per one million tokens, in whatever currency you bill in."""

    input_per_1m: float = Field(..., ge=0)
    output_per_1m: float = Field(..., ge=0)


class LoggingSettings(_Section):
    level: str = "INFO"
    json_format: bool = Field(False, alias="json", description="One JSON object per log line.")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


class MetricsSettings(_Section):
    enabled: bool = False


class OtelSettings(_Section):
    """OpenTelemetry traces (extra `otel`); the standard `OTEL_*` variables fill in what is unset."""

    enabled: bool | None = Field(
        None, description="True/False; None: on when an OTEL_* variable asks for traces."
    )
    endpoint: str | None = Field(None, description="OTLP/HTTP base URL (…:4318).")
    service_name: str | None = None
    sample_ratio: float | None = Field(None, ge=0, le=1)
    capture_content: bool = Field(
        False, description="Record step inputs/outputs (redacted) on spans."
    )


class RemoteHookSettings(RemoteHookFields):
    """A remote OpenAPI service whose operations become tools `name.<operationId>`.

    The fields are `RemoteHookFields`; a bad URL is reported by the settings checks.
    """

    model_config = _Section.model_config
    name: str = Field(..., pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    timeout: Seconds = Field(30.0, gt=0)


class Settings(_Section):
    """Everything taskengine can be configured with (see the module docstring for sources)."""

    providers: list[ProviderConfig] = Field(default_factory=empty_list)
    default_provider: str | None = None
    default_model: str | None = None
    default_embed_model: str | None = None
    db: str | None = Field(None, description="Run store URL; None: SQLite under the user data dir.")
    kv: str | None = Field(None, description="Activity KV URL; None: alongside the run store.")
    activity_max_events: int = Field(1000, ge=1)
    remote_hooks: list[RemoteHookSettings] = Field(default_factory=empty_list)
    mcp_servers: list[McpServerSettings] = Field(
        default_factory=empty_list,
        description="MCP servers whose tools are offered as `name.<tool>`.",
    )
    allowed_http_hosts: list[str] = Field(
        default_factory=empty_list, description="Hosts the `http` hook may call."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings.model_construct)
    limits: LimitsSettings = Field(default_factory=LimitsSettings.model_construct)
    server: ServerSettings = Field(default_factory=ServerSettings.model_construct)
    prices: dict[str, PriceSettings] = Field(default_factory=empty_dict)
    logging: LoggingSettings = Field(default_factory=LoggingSettings.model_construct)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings.model_construct)
    otel: OtelSettings = Field(default_factory=OtelSettings.model_construct)
    queue: QueueSettings = Field(default_factory=QueueSettings.model_construct)

    _source: str | None = PrivateAttr(None)
    _secret_paths: frozenset[tuple[str, ...]] = PrivateAttr(frozenset())
    _warnings: tuple[str, ...] = PrivateAttr(())

    @property
    def source_file(self) -> str | None:
        """The YAML file these settings were loaded from, if any."""
        return self._source

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    def provider(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def price_table(self) -> Any:
        from taskengine.observability.metrics import PriceTable

        return PriceTable({model: p.model_dump() for model, p in self.prices.items()})

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by `***`."""
        return mask_settings(self)

    def secret_values(self) -> list[str]:
        """Every value `masked()` hides (registered with the log redaction filter on load)."""
        found: list[str] = []
        _mask(self.model_dump(mode="json", by_alias=True), self._secret_paths, found)
        return found


def mask_settings(settings: Settings) -> dict[str, Any]:
    """Settings as JSON-safe data, secrets masked: keys like api_key, header values, `${secret:}`."""
    return _mask(settings.model_dump(mode="json", by_alias=True), settings._secret_paths, None)


def _mask(value: Any, secret_paths: frozenset, found: list[str] | None) -> Any:
    return mask_by_path(
        value, keys=SENSITIVE_KEYS, containers=_SECRET_CONTAINERS, paths=secret_paths, found=found
    )


# --- problems and paths ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong: where it came from (file or variable), the key path, the problem."""

    source: str
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key_path or '(top level)'}: {self.message}"


# --- overrides ------------------------------------------------------------------------------


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """CLI `--set server.port=9000` items -> a nested dict (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY.PATH=VALUE", file="overrides")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(out, tuple(key.strip().split(".")), value)
    return out


def _set_path(root: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = root
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    secrets: Any = None,
    resolve_secrets: bool = True,
) -> Settings:
    """Load, expand and validate the settings (see the module docstring for the sources).

    `secrets` is a `SecretStore` or a plain mapping of secret values; when None and the
    configuration references `${secret:…}`, the secret store in the configured `db` is opened.
    With `resolve_secrets=False` references stay unresolved (and masked), so no key is needed.
    Inside a running event loop prefer `aload_settings`.
    """
    from taskengine.settings.loader import Loader, fetch_secrets

    loader = Loader(path, environ, overrides)
    names = loader.secret_names() if resolve_secrets else set()
    values: dict[str, str] = {}
    failures: dict[str, str] = {}
    if names:
        from taskengine.store.secret_store import run_sync

        values, failures = run_sync(lambda: fetch_secrets(loader, names, secrets))
    return loader.build(values, failures, resolve_secrets)


async def aload_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    secrets: Any = None,
    resolve_secrets: bool = True,
) -> Settings:
    """`load_settings` for async code: secrets are read on the caller's event loop."""
    from taskengine.settings.loader import Loader, fetch_secrets

    loader = Loader(path, environ, overrides)
    names = loader.secret_names() if resolve_secrets else set()
    values, failures = await fetch_secrets(loader, names, secrets) if names else ({}, {})
    return loader.build(values, failures, resolve_secrets)
