"""One redactor for everything that leaves the engine: logs, the activity log, run state, responses.

Secrets arrive in many types: an API key is a string, an injected `{"pin": 903175313}` a
number, a header value may be `Bearer <token>`. `Redactor.add` takes a value of any type and
remembers every form it can take in text (the string, the number's digits, a nested value's
leaves and its JSON) plus, for injected mappings, the key names. `redact`/`text` then mask:

- strings and text containing a registered form (forms shorter than `MIN_LENGTH` characters
  are too likely to occur by chance and are masked by key only),
- numbers equal to a registered number (of at least `MIN_LENGTH` digits),
- any value under a sensitive key (`api_key`, `Authorization` …) or a registered injected key.

Booleans carry no text of their own that could be searched for; they are masked by key only.
The process-wide `DEFAULT_REDACTOR` is what logs, activity and server answers use; a remote
hook also keeps its own to clean what it returns before the run sees it.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

__all__ = [
    "DEFAULT_REDACTOR",
    "MASK",
    "Redactor",
    "mask_by_path",
    "redact",
    "redact_text",
    "register_secret_values",
    "sensitive_key",
]

MASK = "***"

_SENSITIVE_WORDS = frozenset(
    {"authorization", "auth", "token", "secret", "password", "passwd", "apikey", "cookie", "credential",
     "credentials", "signature", "bearer"}
)  # fmt: skip
_SENSITIVE_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")}
)
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_BEARER = re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}")
# Obvious credentials even when nobody registered them: bearer tokens and key=value pairs.
_CREDENTIALS = (
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(
        r"(?i)(\b(?:api[_-]?key|api[_-]?token|access[_-]?token|password|passwd|secret|authorization)"
        r"[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?+)(?!\*\*\*)[^\s\"',;}]{4,}"
    ),
    re.compile(r"\b(sk-)[A-Za-z0-9_\-]{16,}"),
)


@lru_cache(maxsize=2048)
def sensitive_key(key: str) -> bool:
    """Whether a field name (api_key, X-Api-Key, accessToken, client_secret …) names a secret."""
    words = [w.lower() for w in _WORD.findall(key)]
    if any(w in _SENSITIVE_WORDS for w in words):
        return True
    return any(pair in _SENSITIVE_PAIRS for pair in itertools.pairwise(words))


def _number_forms(number: int | float) -> set[str]:
    forms = {str(number), json.dumps(number)}
    if isinstance(number, float) and number.is_integer():
        forms.add(str(int(number)))
    return forms


class Redactor:
    """Masks registered secret values (of any type) and values under sensitive keys."""

    #: Shorter text forms are not searched for: masking them would mangle ordinary text.
    MIN_LENGTH = 4

    def __init__(self, values: Iterable[Any] = (), *, by_key_name: bool = True) -> None:
        #: also mask values under names like `api_key` (logs, activity); a tool source's own
        #: redactor does not, since a tool's answer may hold `token_count` or `auth_sha256`
        self.by_key_name = by_key_name
        self._lock = threading.Lock()
        self._texts: set[str] = set()
        self._numbers: set[int | float] = set()
        self._keys: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add_values(values)

    @property
    def active(self) -> bool:
        """Whether anything is registered (else `redact` only masks by key name)."""
        return bool(self._texts or self._numbers or self._keys)

    def answer(self, value: Any) -> Any:
        """A run's answer with registered values masked (a run's own `token` fields are kept)."""
        return self.value(value, by_key_name=False) if self.active else value

    @property
    def secrets(self) -> list[str]:
        """The registered text forms, longest first."""
        return sorted(self._texts, key=len, reverse=True)

    def add(self, value: Any, *, injected: bool = False) -> None:
        """Register a secret value of any type; with `injected`, a mapping's top-level keys
        (the names a hook injects) are masked wherever they appear, too."""
        texts: set[str] = set()
        numbers: set[int | float] = set()
        keys: set[str] = set()
        _collect(value, texts, numbers, keys if injected else None)
        fresh = {t for t in texts if len(t) >= self.MIN_LENGTH} - self._texts
        numbers = {n for n in numbers if len(str(n)) >= self.MIN_LENGTH}
        with self._lock:
            self._numbers |= numbers
            self._keys |= keys
            if fresh:
                self._texts |= fresh
                ordered = sorted(self._texts, key=len, reverse=True)  # longest first wins
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def add_values(self, values: Iterable[Any]) -> None:
        """Register several secret values (API keys, injected header values …)."""
        for value in values:
            self.add(value)

    def clear(self) -> None:
        """Forget every registered value (tests; processes that rotate keys)."""
        with self._lock:
            self._texts.clear()
            self._numbers.clear()
            self._keys.clear()
            self._pattern = None

    def text(self, text: str) -> str:
        """Mask registered values and bearer credentials inside free text."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "Bearer" in text:
            text = _BEARER.sub("Bearer " + MASK, text)
        return text

    def scrub(self, text: str) -> str:
        """`text` (a log line) with registered values and obvious credentials masked.

        Beyond `text`: `key=value` pairs under credential-like names and `sk-…` keys are
        masked even when nobody registered them.
        """
        text = self.text(text)
        for rule in _CREDENTIALS:
            text = rule.sub(lambda m: m.group(1) + MASK, text)
        return text

    def redact(self, value: Any) -> Any:
        """A JSON-safe copy of `value` with secrets masked.

        The same as `value(to_jsonable(value))` in one walk (it runs on every step the
        activity log records): pydantic models by their wire aliases, keys as text, datetimes
        in ISO form, anything else unknown by its `str`.
        """
        return self._redact(value, self.by_key_name)

    def _redact(self, value: Any, by_name: bool) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return MASK if value in self._numbers else value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = str(k)
                out[self.text(key)] = (
                    MASK
                    if v is not None and self._masks_key(key, by_name)
                    else self._redact(v, by_name)
                )
            return out
        if isinstance(value, (list, tuple)):
            return [self._redact(v, by_name) for v in value]
        if isinstance(value, datetime):
            return self.text(value.isoformat())
        from pydantic import BaseModel  # only here: logging must not import pydantic

        if isinstance(value, BaseModel):
            dumped = value.model_dump(mode="json", by_alias=True, exclude_none=True)
            return self._redact(dumped, by_name)
        return self.text(str(value))

    def value(self, value: Any, *, by_key_name: bool | None = None) -> Any:
        """A copy of a JSON-like value with secrets masked (keys and leaves of any type)."""
        by_name = self.by_key_name if by_key_name is None else by_key_name
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)):
            return MASK if value in self._numbers else value
        if isinstance(value, Mapping):
            return {
                self.text(k) if isinstance(k, str) else k: (
                    MASK
                    if v is not None and self._masks_key(k, by_name)
                    else self.value(v, by_key_name=by_name)
                )
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.value(v, by_key_name=by_name) for v in value]
        return value

    def _masks_key(self, key: Any, by_name: bool) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._keys or (by_name and sensitive_key(key))

    def metadata(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Metadata as the Go map[string]string, with secrets masked (nested ones too)."""
        from taskengine.datatypes import to_display  # not at import: logging loads this module

        by_name = self.by_key_name
        return {
            str(k): MASK
            if self._masks_key(str(k), by_name)
            else to_display(self._redact(v, by_name))
            for k, v in values.items()
        }


def _collect(value: Any, texts: set[str], numbers: set[int | float], keys: set[str] | None) -> None:
    """Every searchable form of `value` (iteratively: a secret may nest deeply)."""
    if keys is not None and isinstance(value, Mapping):  # the injected names, not nested ones
        keys.update(str(k) for k in value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts.add(item)
            _scheme, _, token = item.partition(" ")  # "Bearer <token>": the token alone too
            if token.strip():
                texts.add(token.strip())
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, (int, float)):
            numbers.add(item)
            texts |= _number_forms(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
            _add_json(item, texts)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
            _add_json(item, texts)


def _add_json(item: Any, texts: set[str]) -> None:
    try:
        texts.add(json.dumps(item, separators=(",", ":"), ensure_ascii=False, default=str))
        texts.add(json.dumps(item, ensure_ascii=False, default=str))
    except (TypeError, ValueError, RecursionError):
        pass


#: The process-wide redactor: secret stores, config, hooks and MCP servers register here.
DEFAULT_REDACTOR = Redactor()


def register_secret_values(values: Iterable[Any], *, injected: bool = False) -> None:
    """Register values (of any type) that must never be logged, stored or answered."""
    for value in values:
        DEFAULT_REDACTOR.add(value, injected=injected)


def redact(value: Any) -> Any:
    """A JSON-safe copy of `value` with secrets masked by the default redactor."""
    return DEFAULT_REDACTOR.redact(value)


def redact_text(text: str) -> str:
    """`text` with the default redactor's secrets masked."""
    return DEFAULT_REDACTOR.text(text)


def mask_by_path(
    value: Any,
    *,
    keys: frozenset[str],
    containers: frozenset[str],
    paths: frozenset[tuple[str, ...]] = frozenset(),
    found: list[str] | None = None,
) -> Any:
    """A copy of JSON-like `value` masked by where each leaf sits (settings, not free text).

    A leaf is masked when its key is in `keys` (lower-cased), when it sits anywhere inside a
    mapping named in `containers` (e.g. `headers`), or when its key path is in `paths`. The
    masked strings are appended to `found`, so a caller can register them for the log filter.
    """
    return _mask_tree(value, (), keys, containers, paths, False, found)


def _mask_tree(
    value: Any,
    path: tuple[str, ...],
    keys: frozenset[str],
    containers: frozenset[str],
    paths: frozenset[tuple[str, ...]],
    force: bool,
    found: list[str] | None,
) -> Any:
    key = path[-1].lower() if path else ""
    if isinstance(value, dict):
        inside = force or key in containers
        return {
            k: _mask_tree(v, (*path, str(k)), keys, containers, paths, inside, found)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _mask_tree(v, (*path, str(i)), keys, containers, paths, force, found)
            for i, v in enumerate(value)
        ]
    if value is None:
        return None
    if force or key in keys or path in paths:
        if found is not None and isinstance(value, str):
            found.append(value)
        return MASK
    return value
