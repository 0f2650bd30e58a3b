"""Assemble a ready engine from settings: providers, hooks, store, observers.

The CLI, the server and `taskengine.run()` all build their `SimpleEnv` here, so none of them
re-implements wiring. Heavy modules are imported only when a part is actually used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
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
    from taskengine.hooks.builtin import builtin_hooks
    from taskengine.hooks.composite import HookRegistry
    from taskengine.hooks.local import default_local_hooks
    from taskengine.providers.registry import ProviderRegistry
    from taskengine.providers.resolver import ModelResolver

    env_vars = os.environ if environ is None else environ
    settings = _settings_from(settings, config_path, env_vars)
    load_hook_modules(hook_modules)

    providers = ProviderRegistry.from_settings(
        settings.providers,
        env_vars,
        default_provider=settings.default_provider,
        default_model=settings.default_model,
        default_embed_model=settings.default_embed_model,
    )
    resolver = ModelResolver(providers)
    repos: list[Any] = [
        default_local_hooks(),
        *builtin_hooks(allowed_hosts=settings.allowed_http_hosts),
    ]
    if settings.remote_hooks:
        from taskengine.hooks.remote import RemoteHook, RemoteHookRepo

        repos.append(
            RemoteHookRepo(
                [
                    RemoteHook(
                        h.name,
                        h.url,
                        headers=dict(h.headers),
                        inject_body=dict(h.inject_body),
                        timeout=h.timeout,
                    )
                    for h in settings.remote_hooks
                ]
            )
        )
    if getattr(settings, "mcp_servers", None):
        from taskengine.mcp.tools import McpHookRepo

        repos.append(McpHookRepo(settings.mcp_servers, secrets=settings.secret_values()))
    hooks = HookRegistry(*repos)

    store = kv = tracker = tracing = None
    try:
        if use_store:
            from taskengine.store import open_store

            url = store_url or settings.db
            store = await open_store(url) if url else await open_store()

        all_observers = list(observers)
        if settings.prices:
            from taskengine.metrics import CostObserver

            if not any(isinstance(o, CostObserver) for o in all_observers):
                all_observers.insert(0, CostObserver(settings.price_table()))
        if activity:
            from taskengine.activity import ActivityObserver, KVActivitySink
            from taskengine.kv import open_kv

            kv = await open_kv(activity_kv_url(settings, store_url))
            tracker = KVActivitySink(kv, max_events=settings.activity_max_events)
            all_observers.append(ActivityObserver(tracker))
        if metrics is not None:
            all_observers.append(metrics)
        from taskengine.observability.otel import configure_tracing

        tracing = configure_tracing(settings, env_vars)
        if tracing is not None:
            all_observers.append(tracing)

    except BaseException:
        # a part that fails to open must not leak the ones opened before it
        for part in (tracing, kv, store, hooks, providers):
            closer = getattr(part, "aclose", None)
            if closer is not None:
                await closer()
        raise
    from taskengine.template_bounds import set_max_template_chars

    set_max_template_chars(settings.limits.max_template_chars)
    env = SimpleEnv(
        resolver=resolver,
        hooks=hooks,
        store=store,
        observers=all_observers,
        print_fn=print_fn,
        retry_base=settings.retry.base,
        retry_max=settings.retry.max,
        lease_ttl=settings.limits.lease_ttl,
        max_input_bytes=settings.limits.max_input_bytes,
        max_steps_default=settings.limits.max_steps_default,
        max_retries=settings.retry.max_attempts_cap,
        max_steps_cap=settings.limits.max_steps_cap,
    )
    return Runtime(
        settings=settings,
        env=env,
        store=store,
        providers=providers,
        hooks=hooks,
        resolver=resolver,
        activity=tracker,
        tracing=tracing,
    )
