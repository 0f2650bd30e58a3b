"""The layers under the file: `TASKENGINE_*` variables, explicit overrides, and their deep merge."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, get_origin

from taskengine.config import _OTHER_ENV, ENV_PREFIX, PINNED_ENV, ConfigProblem, Settings, _set_path
from taskengine.settings.keys import annotation_at, field_names, format_key_path
from taskengine.suggest import closest

__all__ = ["env_layer", "merge_layers", "normalize_overrides"]


def merge_layers(
    base: Any, over: Any, path: tuple[Any, ...], problems: list[tuple[tuple, str]]
) -> Any:
    """Deep-merge `over` into `base`; a digit-keyed mapping patches items of a list."""
    if isinstance(over, dict) and isinstance(base, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = (
                merge_layers(base[key], value, (*path, key), problems) if key in base else value
            )
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
                items[index] = merge_layers(items[index], value, (*path, index), problems)
        return items
    return over


def normalize_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        value = normalize_overrides(value) if isinstance(value, Mapping) else value
        if "." in key:
            _set_path(out, tuple(key.split(".")), value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_layers(out[key], value, (key,), [])
        else:
            out[key] = value
    return out


def _parse_env_value(raw: str, path: tuple[str, ...]) -> Any:
    text = raw.strip()
    if text[:1] in ("[", "{"):
        return json.loads(text)
    target = annotation_at(path)
    if get_origin(target) is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw


def _typed_path(parts: tuple[str, ...]) -> tuple[Any, ...]:
    """Digit segments become list indices where the declared type at that point is a list."""
    out: list[Any] = []
    for part in parts:
        if part.isdigit() and get_origin(annotation_at(tuple(out))) is list:
            out.append(int(part))
        else:
            out.append(part)
    return tuple(out)


def env_layer(environ: Mapping[str, str]) -> tuple[dict, dict, list[ConfigProblem], list[str]]:
    """Settings from `TASKENGINE_*` variables: (layer, path -> variable, problems, warnings)."""
    layer: dict[str, Any] = {}
    sources: dict[tuple[Any, ...], str] = {}
    problems: list[ConfigProblem] = []
    warnings: list[str] = []
    top = field_names(Settings)
    # pinned plain names first, so the explicit nested spelling wins when both are set
    for name in sorted(environ, key=lambda n: (n not in PINNED_ENV, n)):
        if not name.startswith(ENV_PREFIX) or name in _OTHER_ENV:
            continue
        if name in PINNED_ENV:
            parts = PINNED_ENV[name]
        else:
            parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
            if parts[0] not in top:
                guess = closest(parts[0], top, cutoff=0.8)
                if guess:
                    warnings.append(
                        f"environment variable {name} is not a setting "
                        f"(did you mean {ENV_PREFIX}{guess.upper()}?)"
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
