"""Assemble a ready engine from settings: providers, hooks, store, observers.

The CLI, the server and `taskengine.run()` all build their `SimpleEnv` here, so none of them
re-implements wiring. Heavy modules are imported only when a part is actually used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskengine.engine import SimpleEnv
from taskengine.engine.events import RunObserver
from taskengine.errors import ConfigError, HookError

__all__ = ["Runtime", "activity_kv_url", "load_hook_modules", "open_runtime"]

logger = logging.getLogger("taskengine.runtime")


def load_hook_modules(paths: Iterable[str]) -> None:
    """Import Python files or modules that register hooks (`--hooks PATH_OR_MODULE`)."""
    from taskengine.hooks.local import import_hooks

    for spec in paths:
        try:
            import_hooks(spec)
        except HookError as exc:
            exc.with_context(field="--hooks")
            raise


def activity_kv_url(settings: Any, store_url: str | None = None) -> str:
    """Where the activity log lives: `kv`, else next to the run store, so deployments apart.

    An SQLite store `…/runs.db` keeps its activity in `…/runs.activity.db`; a PostgreSQL
    store (there is no PostgreSQL KV) keeps it in memory unless `kv` names a Redis or file URL.
    """
    if settings.kv:
        return settings.kv
    from taskengine.store.paths import default_db_url, sqlite_path

    url = store_url or settings.db or default_db_url()
    if "://" in url and not url.lower().startswith("sqlite:"):
        logger.warning(
            "activity log kept in memory: set `kv` (e.g. redis://…) to keep it with a %s store",
            url.split(":", 1)[0],
        )
        return "memory://"
    root, _ = os.path.splitext(sqlite_path(url))
    return f"sqlite:///{root.lstrip('/')}.activity.db"


def _settings_from(settings: Any, config_path: str | None, environ: Mapping[str, str]) -> Any:
    """A `Settings`; a mapping is validated as overrides over the file and the environment."""
    from taskengine.config import Settings, load_settings

    if settings is None or isinstance(settings, Mapping):
        return load_settings(config_path, environ=environ, overrides=settings)
    if not isinstance(settings, Settings):
        raise ConfigError(
            f"settings must be a taskengine.Settings or a mapping of settings keys, "
            f"got {type(settings).__name__}"
        )
    return settings


class Runtime:
    """Everything a run needs, owned together and closed together."""

    def __init__(
        self,
        *,
        settings: Any,
        env: SimpleEnv,
        store: Any,
        providers: Any,
        hooks: Any,
        resolver: Any,
        activity: Any = None,
        metrics: Any = None,
        tracing: Any = None,
    ) -> None:
        self.tracing = tracing
        self.settings = settings
        self.env = env
        self.store = store
        self.providers = providers
        self.hooks = hooks
        self.resolver = resolver
        self.activity = activity
        self.metrics = metrics

    async def aclose(self) -> None:
        if self.activity is not None:
            await self.activity.aclose()  # flush pending activity writes before their KV closes
        parts = (self.providers, self.hooks, self.store, getattr(self.activity, "kv", None))
        for part in (*parts, self.tracing):
            closer = getattr(part, "aclose", None)
            if closer is not None:
                await closer()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def open_runtime(
    settings: Any = None,
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    use_store: bool = True,
    store_url: str | None = None,
    hook_modules: Iterable[str] = (),
    observers: Iterable[RunObserver] = (),
    print_fn: Any = None,
    activity: bool = False,
    metrics: Any = None,
) -> Runtime:
    """Build providers, hooks and (optionally) the run store from settings, and an env over them."""
    env_vars = os.environ if environ is None else environ
    settings = _settings_from(settings, config_path, env_vars)
    load_hook_modules(hook_modules)
    providers, resolver = _providers(settings, env_vars)
    hooks = _hooks(settings)
    opened = _OpenedParts()
    try:
        if use_store:
            opened.store = await _open_store(store_url or settings.db)
        all_observers = _cost_observers(settings, observers)
        if activity:
            all_observers.append(await opened.open_activity(settings, store_url))
        if metrics is not None:
            all_observers.append(metrics)
        from taskengine.observability.otel import configure_tracing

        opened.tracing = configure_tracing(settings, env_vars)
        if opened.tracing is not None:
            all_observers.append(opened.tracing)
    except BaseException:
        # a part that fails to open must not leak the ones opened before it
        await _close_all(opened.tracing, opened.kv, opened.store, hooks, providers)
        raise
    env = _simple_env(settings, resolver, hooks, opened.store, all_observers, print_fn)
    return Runtime(
        settings=settings,
        env=env,
        store=opened.store,
        providers=providers,
        hooks=hooks,
        resolver=resolver,
        activity=opened.tracker,
        tracing=opened.tracing,
    )


# --- the steps of open_runtime ------------------------------------------------------------


@dataclass
class _OpenedParts:
    """What `open_runtime` has opened so far, so a failure closes exactly those."""

    store: Any = None
    kv: Any = None
    tracker: Any = None
    tracing: Any = None

    async def open_activity(self, settings: Any, store_url: str | None) -> RunObserver:
        """Open the activity KV and its sink; the observer that feeds it."""
        from taskengine.kv import open_kv
        from taskengine.observability.activity import ActivityObserver, KVActivitySink

        self.kv = await open_kv(activity_kv_url(settings, store_url))
        self.tracker = KVActivitySink(self.kv, max_events=settings.activity_max_events)
        return ActivityObserver(self.tracker)


def _providers(settings: Any, env_vars: Mapping[str, str]) -> tuple[Any, Any]:
    """The provider registry of the settings and the model resolver over it."""
    from taskengine.providers.registry import ProviderRegistry
    from taskengine.providers.resolver import ModelResolver

    providers = ProviderRegistry.from_settings(
        settings.providers,
        env_vars,
        default_provider=settings.default_provider,
        default_model=settings.default_model,
        default_embed_model=settings.default_embed_model,
    )
    return providers, ModelResolver(providers)


def _hooks(settings: Any) -> Any:
    """Local and built-in hooks, then the configured remote hooks and MCP servers."""
    from taskengine.hooks.builtin import builtin_hooks
    from taskengine.hooks.composite import HookRegistry
    from taskengine.hooks.local import default_local_hooks

    repos: list[Any] = [
        default_local_hooks(),
        *builtin_hooks(allowed_hosts=settings.allowed_http_hosts),
    ]
    if settings.remote_hooks:
        from taskengine.hooks.remote import RemoteHookRepo

        repos.append(RemoteHookRepo(settings.remote_hooks))
    if getattr(settings, "mcp_servers", None):
        from taskengine.mcp.tools import McpHookRepo

        repos.append(McpHookRepo(settings.mcp_servers, secrets=settings.secret_values()))
    return HookRegistry(*repos)


async def _open_store(url: str | None) -> Any:
    from taskengine.store import open_store

    return await open_store(url) if url else await open_store()


def _cost_observers(settings: Any, observers: Iterable[RunObserver]) -> list[RunObserver]:
    """The caller's observers, led by a cost observer when prices are set and none is given."""
    all_observers = list(observers)
    if settings.prices:
        from taskengine.observability.metrics import CostObserver

        if not any(isinstance(o, CostObserver) for o in all_observers):
            all_observers.insert(0, CostObserver(settings.price_table()))
    return all_observers


async def _close_all(*parts: Any) -> None:
    for part in parts:
        closer = getattr(part, "aclose", None)
        if closer is not None:
            await closer()


def _simple_env(
    settings: Any,
    resolver: Any,
    hooks: Any,
    store: Any,
    observers: list[RunObserver],
    print_fn: Any,
) -> SimpleEnv:
    """The engine over the opened parts, with the settings' limits and retry policy."""
    from taskengine.templates.bounds import set_max_template_chars

    set_max_template_chars(settings.limits.max_template_chars)
    return SimpleEnv(
        resolver=resolver,
        hooks=hooks,
        store=store,
        observers=observers,
        print_fn=print_fn,
        retry_base=settings.retry.base,
        retry_max=settings.retry.max,
        lease_ttl=settings.limits.lease_ttl,
        max_input_bytes=settings.limits.max_input_bytes,
        max_steps_default=settings.limits.max_steps_default,
        max_retries=settings.retry.max_attempts_cap,
        max_steps_cap=settings.limits.max_steps_cap,
    )
