"""How `load_settings` builds Settings: file and environment layers, `${…}` expansion, errors.

Kept apart from `config.py` so the settings model reads on its own; nothing here is public
beyond what `taskengine.config` re-exports.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from taskengine.config import (
    _OTHER_ENV,
    _SECRET_CONTAINERS,
    ENV_PREFIX,
    PINNED_ENV,
    SENSITIVE_KEYS,
    ConfigProblem,
    Settings,
    _set_path,
)
from taskengine.errors import ConfigError, SecretError, TaskEngineError
from taskengine.providers.config import PROVIDER_TYPES

__all__ = ["Loader", "fetch_secrets", "format_key_path"]

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DB_SCHEMES = {"sqlite", "postgresql", "postgres"}
_KV_SCHEMES = {"memory", "sqlite", "redis", "rediss", "unix"}


def format_key_path(loc: tuple[Any, ...]) -> str:
    """('providers', 1, 'base_url') -> 'providers[1].base_url'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _strip(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _annotation_at(loc: tuple[Any, ...]) -> Any:
    """The declared type at a key path of Settings, or None when the path leaves the schema."""
    tp: Any = Settings
    for part in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _model_field(tp, str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) in (list, tuple):
            tp = (get_args(tp) or (Any,))[0]
        elif get_origin(tp) is dict:
            tp = (get_args(tp) or (Any, Any))[1]
        else:
            return None
    return _strip(tp)


def _model_field(model: type[BaseModel], name: str) -> Any:
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None


def _field_names(model: Any) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _unknown_key_message(key: str, parent: tuple[Any, ...]) -> str:
    names = _field_names(_annotation_at(parent))
    guess = difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.6)
    if guess:
        return f"unknown key {key!r} (did you mean {guess[0]!r}?)"
    return (
        f"unknown key {key!r}; expected one of: {', '.join(sorted(names))}"
        if names
        else f"unknown key {key!r}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _merge(base: Any, over: Any, path: tuple[Any, ...], problems: list[tuple[tuple, str]]) -> Any:
    """Deep-merge `over` into `base`; a digit-keyed mapping patches items of a list."""
    if isinstance(over, dict) and isinstance(base, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value, (*path, key), problems) if key in base else value
        return out
    if (
        isinstance(over, dict)
        and isinstance(base, list)
        and over
        and all(str(k).isdigit() for k in over)
    ):
        items = list(base)
        for key, value in over.items():
            index = int(key)
            if index >= len(items):
                problems.append(
                    ((*path, index), f"no item {index} to override (the list has {len(items)})")
                )
            else:
                items[index] = _merge(items[index], value, (*path, index), problems)
        return items
    return over


def _normalize_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        value = _normalize_overrides(value) if isinstance(value, Mapping) else value
        if "." in key:
            _set_path(out, tuple(key.split(".")), value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, (key,), [])
        else:
            out[key] = value
    return out


def _parse_env_value(raw: str, path: tuple[str, ...]) -> Any:
    text = raw.strip()
    if text[:1] in ("[", "{"):
        return json.loads(text)
    target = _annotation_at(path)
    if get_origin(target) is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw


def _typed_path(parts: tuple[str, ...]) -> tuple[Any, ...]:
    """Digit segments become list indices where the declared type at that point is a list."""
    out: list[Any] = []
    for part in parts:
        if part.isdigit() and get_origin(_annotation_at(tuple(out))) is list:
            out.append(int(part))
        else:
            out.append(part)
    return tuple(out)


def _env_layer(environ: Mapping[str, str]) -> tuple[dict, dict, list[ConfigProblem], list[str]]:
    """Settings from `TASKENGINE_*` variables: (layer, path -> variable, problems, warnings)."""
    layer: dict[str, Any] = {}
    sources: dict[tuple[Any, ...], str] = {}
    problems: list[ConfigProblem] = []
    warnings: list[str] = []
    top = _field_names(Settings)
    # pinned plain names first, so the explicit nested spelling wins when both are set
    for name in sorted(environ, key=lambda n: (n not in PINNED_ENV, n)):
        if not name.startswith(ENV_PREFIX) or name in _OTHER_ENV:
            continue
        if name in PINNED_ENV:
            parts = PINNED_ENV[name]
        else:
            parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
            if parts[0] not in top:
                guess = difflib.get_close_matches(parts[0], top, n=1, cutoff=0.8)
                if guess:
                    warnings.append(
                        f"environment variable {name} is not a setting "
                        f"(did you mean {ENV_PREFIX}{guess[0].upper()}?)"
                    )
                continue
        path = _typed_path(parts)
        label = f"environment variable {name}"
        if "" in parts:
            problems.append(
                ConfigProblem(
                    label, format_key_path(path), "empty key segment (use '__' between keys)"
                )
            )
            continue
        try:
            value = _parse_env_value(environ[name], path)
        except ValueError as exc:
            problems.append(
                ConfigProblem(label, format_key_path(path), f"value is not valid JSON: {exc}")
            )
            continue
        _set_path(layer, path, value)
        sources[path] = name
    return layer, sources, problems, warnings


class _Expander:
    """Expands `${VAR}`, `${VAR:-default}` and `${secret:name}` in every string of a tree."""

    def __init__(
        self,
        environ: Mapping[str, str],
        secrets: Mapping[str, str],
        failures: Mapping[str, str],
        resolve: bool,
    ):
        self.environ, self.secrets, self.failures, self.resolve = (
            environ,
            secrets,
            failures,
            resolve,
        )
        self.secret_paths: set[tuple[str, ...]] = set()
        self.problems: list[tuple[tuple[Any, ...], str]] = []

    def expand(self, value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            return _REF.sub(lambda m: self._one(m, path), value) if "${" in value else value
        if isinstance(value, dict):
            return {k: self.expand(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def _one(self, match: re.Match[str], path: tuple[Any, ...]) -> str:
        inner = match.group(1)
        if inner is None:
            return "${"  # `$${` escapes a literal `${`
        if inner.startswith("secret:"):
            name = inner[len("secret:") :].strip()
            self.secret_paths.add(tuple(str(p) for p in path))
            if not self.resolve:
                return match.group(0)
            if name in self.secrets:
                return self.secrets[name]
            self.problems.append((path, self.failures.get(name) or f"secret {name!r} is not set"))
            return ""
        var, sep, default = inner.partition(":-")
        if not _VAR.match(var):
            self.problems.append(
                (
                    path,
                    f"invalid reference '${{{inner}}}' (use ${{VAR}}, ${{VAR:-default}} or ${{secret:name}})",
                )
            )
            return match.group(0)
        value = self.environ.get(var)
        if value is None or (sep and value == ""):
            if sep:
                return default
            self.problems.append(
                (path, f"environment variable {var} is not set (referenced as ${{{var}}})")
            )
            return ""
        return value


def _config_error(problems: list[ConfigProblem], file: str | None) -> ConfigError:
    if len(problems) == 1:
        only = problems[0]
        text = f"{only.key_path}: {only.message}" if only.key_path else only.message
        err = ConfigError(text, file=only.source)
        # set after construction: ConfigError's `field` would print the key path a second time
        err.key_path = only.key_path or None
    else:
        lines = "\n".join(f"  {p}" for p in problems)
        err = ConfigError(f"{len(problems)} configuration problems:\n{lines}")
        err.file = file
        err.key_path = problems[0].key_path or None
    err.problems = problems  # type: ignore[attr-defined]  # one line each for `config check`
    return err


def _is_http(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class Loader:
    """Reads the layers once; `build` expands, merges and validates them."""

    def __init__(
        self, path: str | Path | None, environ: Mapping[str, str] | None, overrides: Mapping | None
    ):
        self.environ = dict(os.environ if environ is None else environ)
        self.file = self._find(path)
        self.label = str(self.file) if self.file else "defaults"
        self.file_data = self._read(self.file) if self.file else {}
        self.env_data, self.env_sources, self.env_problems, self.warnings = _env_layer(self.environ)
        self.overrides = _normalize_overrides(overrides or {})

    def _find(self, path: str | Path | None) -> Path | None:
        explicit = path if path is not None else self.environ.get("TASKENGINE_CONFIG") or None
        if explicit is not None:
            found = Path(explicit).expanduser()
            if not found.is_file():
                raise _config_error(
                    [ConfigProblem(str(found), "", "configuration file not found")], str(found)
                )
            return found
        for name in ("taskengine.yaml", "taskengine.yml"):
            if Path(name).is_file():
                return Path(name)
        return None

    def _read(self, path: Path) -> dict[str, Any]:
        import yaml

        def fail(message: str) -> ConfigError:
            return _config_error([ConfigProblem(str(path), "", message)], str(path))

        try:
            data = yaml.safe_load(path.read_text("utf-8"))
        except OSError as exc:
            raise fail(f"cannot read the file: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise fail("the file is not UTF-8 text") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise fail(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise fail(f"the top level must be a mapping of settings, not a {type(data).__name__}")
        return data

    def secret_names(self) -> set[str]:
        from taskengine.store.secret_store import find_secret_refs

        return find_secret_refs(self.file_data) | find_secret_refs(self.env_data)

    def db_url(self) -> str | None:
        """The store URL (where secrets live), expanded without secrets."""
        for layer, label in (
            (self.overrides, "overrides"),
            (self.env_data, "environment"),
            (self.file_data, self.label),
        ):
            value = layer.get("db")
            if value is None:
                continue
            if not isinstance(value, str):
                return None
            if "${secret:" in value:
                raise _config_error(
                    [
                        ConfigProblem(
                            label,
                            "db",
                            "the store URL cannot come from ${secret:…}: secrets live in that store",
                        )
                    ],
                    self.label,
                )
            expander = _Expander(self.environ, {}, {}, resolve=False)
            url = expander.expand(value, ("db",))
            if expander.problems:
                raise _config_error(
                    [ConfigProblem(label, "db", expander.problems[0][1])], self.label
                )
            return url
        return None

    def origin(self, loc: tuple[Any, ...]) -> str:
        """Which layer set the value at `loc`: overrides, a variable, or the file."""
        for n in range(len(loc), 0, -1):
            prefix = tuple(loc[:n])
            node: Any = self.overrides
            for part in prefix:
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return "overrides"
            if prefix in self.env_sources:
                return f"environment variable {self.env_sources[prefix]}"
        return self.label

    def build(
        self, secrets: Mapping[str, str], failures: Mapping[str, str], resolve: bool
    ) -> Settings:
        problems = list(self.env_problems)
        from_file = _Expander(self.environ, secrets, failures, resolve)
        from_env = _Expander(self.environ, secrets, failures, resolve)
        file_data = from_file.expand(self.file_data, ())
        env_data = from_env.expand(self.env_data, ())
        bad_paths = set()
        for expander in (from_file, from_env):
            for loc, message in expander.problems:
                bad_paths.add(tuple(loc))
                problems.append(ConfigProblem(self.origin(loc), format_key_path(loc), message))
        merge_problems: list[tuple[tuple, str]] = []
        merged = _merge(
            _merge(file_data, env_data, (), merge_problems), self.overrides, (), merge_problems
        )
        problems += [
            ConfigProblem(self.origin(loc), format_key_path(loc), m) for loc, m in merge_problems
        ]
        secret_paths = frozenset(from_file.secret_paths | from_env.secret_paths)
        try:
            settings = Settings.model_validate(merged)
        except ValidationError as exc:
            problems += self._from_validation(exc, bad_paths, secret_paths)
        else:
            problems += self._semantic(settings)
        if problems:
            raise _config_error(problems, str(self.file) if self.file else None)
        settings._source = str(self.file) if self.file else None
        settings._secret_paths = secret_paths
        settings._warnings = tuple(self.warnings)
        from taskengine.logs import register_secrets

        register_secrets(settings.secret_values())
        return settings

    def _from_validation(
        self, exc: ValidationError, skip: set, secret_paths: frozenset
    ) -> list[ConfigProblem]:
        out = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if loc in skip:
                continue  # already reported as a failed ${…} expansion
            if err["type"] == "extra_forbidden":
                message = _unknown_key_message(str(loc[-1]), loc[:-1])
            else:
                message = err["msg"].removeprefix("Value error, ")
                sensitive = any(str(p).lower() in SENSITIVE_KEYS | _SECRET_CONTAINERS for p in loc)
                if (
                    err["type"] != "missing"
                    and not sensitive
                    and tuple(map(str, loc)) not in secret_paths
                ):
                    message += f" (got {_short(err.get('input'))})"
            out.append(ConfigProblem(self.origin(loc), format_key_path(loc), message))
        return out

    def _semantic(self, s: Settings) -> list[ConfigProblem]:
        out: list[ConfigProblem] = []

        def add(loc: tuple[Any, ...], message: str) -> None:
            out.append(ConfigProblem(self.origin(loc), format_key_path(loc), message))

        names: dict[str, int] = {}
        for i, p in enumerate(s.providers):
            if p.name in names:
                add(
                    ("providers", i, "name"),
                    f"duplicate provider name {p.name!r} (also providers[{names[p.name]}])",
                )
            names.setdefault(p.name, i)
            if p.type not in PROVIDER_TYPES:
                add(
                    ("providers", i, "type"),
                    _choice_message("provider type", p.type, PROVIDER_TYPES),
                )
            if p.base_url and not _is_http(p.base_url):
                add(("providers", i, "base_url"), "must be an http:// or https:// URL")
        if (
            s.default_provider
            and s.default_provider not in names
            and s.default_provider not in PROVIDER_TYPES
        ):
            add(
                ("default_provider",),
                _choice_message("provider", s.default_provider, [*names, *PROVIDER_TYPES]),
            )
        hooks: dict[str, int] = {}
        for i, h in enumerate(s.remote_hooks):
            if h.name in hooks:
                add(
                    ("remote_hooks", i, "name"),
                    f"duplicate remote hook name {h.name!r} (also remote_hooks[{hooks[h.name]}])",
                )
            hooks.setdefault(h.name, i)
            if not _is_http(h.url):
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
        if s.retry.max < s.retry.base:
            add(("retry", "max"), f"must be at least retry.base ({s.retry.base})")
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
        return out


def _choice_message(what: str, value: str, choices: Any) -> str:
    guess = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    hint = f" (did you mean {guess[0]!r}?)" if guess else f"; expected one of: {', '.join(choices)}"
    return f"unknown {what} {value!r}{hint}"


async def fetch_secrets(
    loader: Loader, names: set[str], secrets: Any
) -> tuple[dict[str, str], dict[str, str]]:
    values: dict[str, str] = {}
    failures: dict[str, str] = {}
    if isinstance(secrets, Mapping):
        for name in names:
            if name in secrets:
                values[name] = secrets[name]
            else:
                failures[name] = f"secret {name!r} is not set"
        return values, failures

    async def read(store: Any) -> None:
        for name in sorted(names):
            try:
                values[name] = await store.get(name)
            except SecretError as exc:
                failures[name] = exc.message

    if secrets is not None:
        await read(secrets)
        return values, failures
    from taskengine.store.secret_store import open_secret_store

    try:
        async with open_secret_store(loader.db_url(), environ=loader.environ) as store:
            await read(store)
    except ConfigError:
        raise
    except TaskEngineError as exc:
        for name in names:
            failures.setdefault(name, f"cannot read secret {name!r}: {exc}")
    return values, failures
