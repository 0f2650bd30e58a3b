"""How `load_settings` builds Settings: read the layers once, expand, merge, validate, check.

Nothing here is public beyond what `taskengine.config` re-exports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from taskengine.config import _SECRET_CONTAINERS, SENSITIVE_KEYS, ConfigProblem, Settings
from taskengine.errors import ConfigError, SecretError, TaskEngineError
from taskengine.settings.checks import semantic_problems
from taskengine.settings.expand import Expander
from taskengine.settings.keys import config_error, format_key_path, short_repr, unknown_key_message
from taskengine.settings.layers import env_layer, merge_layers, normalize_overrides

__all__ = ["Loader", "fetch_secrets"]


class Loader:
    """Reads the layers once; `build` expands, merges and validates them."""

    def __init__(
        self, path: str | Path | None, environ: Mapping[str, str] | None, overrides: Mapping | None
    ):
        self.environ = dict(os.environ if environ is None else environ)
        self.file = self._find(path)
        self.label = str(self.file) if self.file else "defaults"
        self.file_data = self._read(self.file) if self.file else {}
        self.env_data, self.env_sources, self.env_problems, self.warnings = env_layer(self.environ)
        self.overrides = normalize_overrides(overrides or {})

    def _find(self, path: str | Path | None) -> Path | None:
        explicit = path if path is not None else self.environ.get("TASKENGINE_CONFIG") or None
        if explicit is not None:
            found = Path(explicit).expanduser()
            if not found.is_file():
                raise config_error(
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
            return config_error([ConfigProblem(str(path), "", message)], str(path))

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
        from taskengine.store.secret_refs import find_secret_refs

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
                raise config_error(
                    [
                        ConfigProblem(
                            label,
                            "db",
                            "the store URL cannot come from ${secret:…}: secrets live in that store",
                        )
                    ],
                    self.label,
                )
            expander = Expander(self.environ, {}, {}, resolve=False)
            url = expander.expand(value, ("db",))
            if expander.problems:
                raise config_error(
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
        from_file = Expander(self.environ, secrets, failures, resolve)
        from_env = Expander(self.environ, secrets, failures, resolve)
        file_data = from_file.expand(self.file_data, ())
        env_data = from_env.expand(self.env_data, ())
        bad_paths = set()
        for expander in (from_file, from_env):
            for loc, message in expander.problems:
                bad_paths.add(tuple(loc))
                problems.append(ConfigProblem(self.origin(loc), format_key_path(loc), message))
        merge_problems: list[tuple[tuple, str]] = []
        merged = merge_layers(
            merge_layers(file_data, env_data, (), merge_problems),
            self.overrides,
            (),
            merge_problems,
        )
        problems += [
            ConfigProblem(self.origin(loc), format_key_path(loc), m) for loc, m in merge_problems
        ]
        secret_paths = frozenset(from_file.secret_paths | from_env.secret_paths)
        try:
            # nothing configured: the defaults need no validation (nor a validator built)
            settings = Settings.model_validate(merged) if merged else Settings.model_construct()
        except ValidationError as exc:
            problems += self._from_validation(exc, bad_paths, secret_paths)
        else:
            problems += self._semantic(settings)
        if problems:
            raise config_error(problems, str(self.file) if self.file else None)
        settings._source = str(self.file) if self.file else None
        settings._secret_paths = secret_paths
        settings._warnings = tuple(self.warnings)
        from taskengine.observability.logs import register_secrets

        # the defaults hold no secrets (and dumping them would build the settings' serializer)
        register_secrets(settings.secret_values() if merged else [])
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
                message = unknown_key_message(str(loc[-1]), loc[:-1])
            else:
                message = err["msg"].removeprefix("Value error, ")
                sensitive = any(str(p).lower() in SENSITIVE_KEYS | _SECRET_CONTAINERS for p in loc)
                if (
                    err["type"] != "missing"
                    and not sensitive
                    and tuple(map(str, loc)) not in secret_paths
                ):
                    message += f" (got {short_repr(err.get('input'))})"
            out.append(ConfigProblem(self.origin(loc), format_key_path(loc), message))
        return out

    def _semantic(self, s: Settings) -> list[ConfigProblem]:
        return semantic_problems(s, self.origin)


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
