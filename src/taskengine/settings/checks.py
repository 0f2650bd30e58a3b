"""Checks a validated Settings cannot express in its types: unique names, known kinds, URLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskengine.config import ConfigProblem, Settings
from taskengine.providers.config import PROVIDER_TYPES
from taskengine.settings.keys import choice_message, format_key_path

__all__ = ["is_http", "semantic_problems"]

_DB_SCHEMES = {"sqlite", "postgresql", "postgres"}
_KV_SCHEMES = {"memory", "sqlite", "redis", "rediss", "unix"}


def is_http(url: str) -> bool:
    """True for an absolute http:// or https:// URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


#: Reports one problem at a key path (the caller knows which layer set it).
Report = Callable[[tuple[Any, ...], str], None]


def semantic_problems(s: Settings, origin: Callable[[tuple[Any, ...]], str]) -> list[ConfigProblem]:
    """Every problem of `s` its types cannot catch; `origin(loc)` names the layer behind `loc`."""
    out: list[ConfigProblem] = []

    def add(loc: tuple[Any, ...], message: str) -> None:
        out.append(ConfigProblem(origin(loc), format_key_path(loc), message))

    _check_providers(s, add)
    _check_hook_names(s, add)
    if s.retry.max < s.retry.base:
        add(("retry", "max"), f"must be at least retry.base ({s.retry.base})")
    _check_store_urls(s, add)
    return out


def _check_providers(s: Settings, add: Report) -> None:
    names: dict[str, int] = {}
    for i, p in enumerate(s.providers):
        if p.name in names:
            add(
                ("providers", i, "name"),
                f"duplicate provider name {p.name!r} (also providers[{names[p.name]}])",
            )
        names.setdefault(p.name, i)
        if p.type not in PROVIDER_TYPES:
            add(("providers", i, "type"), choice_message("provider type", p.type, PROVIDER_TYPES))
        if p.base_url and not is_http(p.base_url):
            add(("providers", i, "base_url"), "must be an http:// or https:// URL")
    if (
        s.default_provider
        and s.default_provider not in names
        and s.default_provider not in PROVIDER_TYPES
    ):
        add(
            ("default_provider",),
            choice_message("provider", s.default_provider, [*names, *PROVIDER_TYPES]),
        )


def _check_hook_names(s: Settings, add: Report) -> None:
    hooks: dict[str, int] = {}
    for i, h in enumerate(s.remote_hooks):
        if h.name in hooks:
            add(
                ("remote_hooks", i, "name"),
                f"duplicate remote hook name {h.name!r} (also remote_hooks[{hooks[h.name]}])",
            )
        hooks.setdefault(h.name, i)
        if not is_http(h.url):
            add(("remote_hooks", i, "url"), "must be an http:// or https:// URL")
    servers: dict[str, int] = {}
    for i, m in enumerate(s.mcp_servers):
        if m.name in hooks or m.name in servers:
            also = (
                f"remote_hooks[{hooks[m.name]}]"
                if m.name in hooks
                else f"mcp_servers[{servers[m.name]}]"
            )
            add(("mcp_servers", i, "name"), f"duplicate hook name {m.name!r} (also {also})")
        servers.setdefault(m.name, i)


def _check_store_urls(s: Settings, add: Report) -> None:
    for key, url, schemes in (("db", s.db, _DB_SCHEMES), ("kv", s.kv, _KV_SCHEMES)):
        if not url:
            continue
        if key == "db" and "://" not in url:
            continue  # a plain file path: an SQLite run store
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme.split("+", 1)[0] not in schemes:
            expected = ", ".join(f"{x}://" for x in sorted(schemes))
            plain = ", or a plain file path (SQLite)" if key == "db" else ""
            add((key,), f"unsupported store URL (expected one of: {expected}{plain})")
