"""Remote hooks registered through the API, served to chains like configured ones.

`StoredRemoteHooks` is a `HookRepo` over the hooks kept in the run store's registry. It rebuilds
its inner `RemoteHookRepo` when one is added, changed or removed and bumps `version`, which
makes the engine's `HookRegistry` re-index, so a hook registered over HTTP is usable by the next
run without a restart. All inner repos share one HTTP session, owned here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from taskengine.observability.redaction import MASK
from taskengine.server.errors import ApiError

if TYPE_CHECKING:
    import aiohttp

    from taskengine.chain import HookCall
    from taskengine.datatypes import DataType, Tool
    from taskengine.hooks.base import HookContext
    from taskengine.hooks.remote import RemoteHookConfig, RemoteHookRepo

__all__ = [
    "MASK",
    "StoredRemoteHooks",
    "drop_sealed",
    "masked_record",
    "merge_write_only",
    "seal_write_only",
    "unseal_write_only",
    "validate_record",
]

#: Record keys whose values are secrets injected into calls: accepted, stored, never returned.
WRITE_ONLY = ("headers", "inject_body")


_REF = re.compile(r"^\$\{secret:([A-Za-z0-9_./-]{1,128})\}$")
_PREFIX = "remote-hook"


def _secret_name(hook_id: str, field: str, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:60]
    return f"{_PREFIX}/{hook_id}/{field}/{safe}"


async def seal_write_only(record: Mapping[str, Any], hook_id: str, secrets: Any) -> dict[str, Any]:
    """Move header and injected-body values into the encrypted secret store.

    The stored record keeps `${secret:…}` references only, so the values are never at rest in
    clear text; references the caller wrote themselves are kept as they are.
    """
    out = dict(record)
    for field in WRITE_ONLY:
        values = record.get(field)
        if not isinstance(values, Mapping):
            continue
        sealed: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, str) and _REF.match(value):
                sealed[key] = value
                continue
            name = _secret_name(hook_id, field, str(key))
            await secrets.set(name, json.dumps(value))
            sealed[key] = f"${{secret:{name}}}"
        out[field] = sealed
    return out


async def unseal_write_only(record: Mapping[str, Any], secrets: Any) -> dict[str, Any]:
    """The record with every `${secret:…}` reference in headers and injected body resolved."""
    out = dict(record)
    for field in WRITE_ONLY:
        values = record.get(field)
        if not isinstance(values, Mapping):
            continue
        resolved: dict[str, Any] = {}
        for key, value in values.items():
            m = _REF.match(value) if isinstance(value, str) else None
            if m is None:
                resolved[key] = value
                continue
            plain = await secrets.get(m.group(1))
            resolved[key] = json.loads(plain) if m.group(1).startswith(f"{_PREFIX}/") else plain
        out[field] = resolved
    return out


async def drop_sealed(hook_id: str, secrets: Any, keep: Mapping[str, Any] | None = None) -> None:
    """Delete the secrets of hook `hook_id` that `keep` (a stored record) no longer refers to."""
    wanted = set()
    for field in WRITE_ONLY:
        for value in ((keep or {}).get(field) or {}).values():
            m = _REF.match(value) if isinstance(value, str) else None
            if m is not None:
                wanted.add(m.group(1))
    for name in await secrets.names():
        if name.startswith(f"{_PREFIX}/{hook_id}/") and name not in wanted:
            await secrets.delete(name)


def validate_record(record: Any) -> RemoteHookConfig:
    """A remote-hook record checked field by field; problems are a 422 with their paths."""
    from taskengine.hooks.remote import RemoteHookConfig

    if not isinstance(record, dict):
        raise _invalid([{"path": "(body)", "message": "a remote hook must be a JSON object"}])
    try:
        return RemoteHookConfig.model_validate(record)
    except ValidationError as exc:
        raise _invalid([
            {"path": ".".join(str(p) for p in err["loc"]) or "(body)", "message": str(err["msg"])}
            for err in exc.errors()
        ]) from None  # fmt: skip


def _invalid(problems: list[dict[str, str]]) -> ApiError:
    text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
    return ApiError(422, f"invalid remote hook: {text}", type="ValidationError", code="invalid_hook",
                    problems=problems)  # fmt: skip


def masked_record(
    hook_id: str, record: Mapping[str, Any], created: Any, updated: Any
) -> dict[str, Any]:
    """The public view of a stored hook: header and injected-body values replaced by `***`."""
    out: dict[str, Any] = {"id": hook_id}
    for key, value in record.items():
        if key in WRITE_ONLY and isinstance(value, Mapping):
            out[key] = dict.fromkeys(value, MASK)
        else:
            out[key] = value
    out["createdAt"] = _iso(created)
    out["updatedAt"] = _iso(updated)
    return out


def merge_write_only(new: dict[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """On update, a value sent back as `***` (as GET shows it) keeps the stored secret."""
    merged = dict(new)
    for key in WRITE_ONLY:
        incoming, stored = new.get(key), old.get(key)
        if isinstance(incoming, Mapping) and isinstance(stored, Mapping):
            merged[key] = {
                k: (stored[k] if v == MASK and k in stored else v) for k, v in incoming.items()
            }
    return merged


def _iso(when: Any) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


class StoredRemoteHooks:
    """A `HookRepo` whose hooks can be added and removed while the server runs."""

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._session = session
        self._configs: dict[str, RemoteHookConfig] = {}
        self._repo: RemoteHookRepo | None = None
        self.version = 0
        self._rebuild()

    async def open(self) -> None:
        """Create the shared HTTP session (inside the running loop)."""
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession()
            self._rebuild()

    def load(self, items: Iterable[tuple[str, RemoteHookConfig]]) -> None:
        for hook_id, config in items:
            self._configs[hook_id] = config
        self._rebuild()

    def put(self, hook_id: str, config: RemoteHookConfig) -> None:
        self._configs[hook_id] = config
        self._rebuild()

    def remove(self, hook_id: str) -> None:
        if self._configs.pop(hook_id, None) is not None:
            self._rebuild()

    def _rebuild(self) -> None:
        from taskengine.hooks.remote import RemoteHookRepo

        self._repo = RemoteHookRepo(self._configs.values(), session=self._session)
        self.version += 1

    @property
    def repo(self) -> RemoteHookRepo:
        assert self._repo is not None
        return self._repo

    # --- HookRepo -------------------------------------------------------------------------

    def hook_names(self) -> list[str]:
        return self.repo.hook_names()

    async def exec(
        self,
        call: HookCall,
        *,
        input: Any,
        input_type: DataType,
        context: HookContext,
        args: dict[str, Any] | None = None,
    ) -> tuple[Any, DataType]:
        return await self.repo.exec(
            call, input=input, input_type=input_type, context=context, args=args
        )

    async def supports(self) -> list[str]:
        return self.hook_names()

    async def get_schemas_for_supported_hooks(self) -> dict[str, Any]:
        return await self.repo.get_schemas_for_supported_hooks()

    async def get_tools_for_hook_by_name(self, name: str) -> list[Tool]:
        return await self.repo.get_tools_for_hook_by_name(name)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
