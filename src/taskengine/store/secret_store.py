"""Encrypted secrets kept in the run store's database, sealed with one master key.

Each secret is sealed with AES-256-GCM (from `cryptography`, never home-made crypto) under a
random 96-bit nonce, with the secret's name as associated data so two blobs cannot be swapped.
Blobs carry the id of the key that sealed them, so a wrong master key is named, not decrypted
into garbage. The master key comes from `store.secret_keys`; `${secret:name}` references
in configuration are handled by `store.secret_refs`. Both are re-exported here, so this
module is the one import path of the secret store (it was `taskengine.store.secret_store`, a name that
shadowed the standard library's `secrets`).
"""

from __future__ import annotations

import builtins
import inspect
import os
import re
import secrets as _random
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from taskengine.errors import SecretError
from taskengine.store.secret_keys import (
    KEY_ENV,
    KEY_FILE_ENV,
    MasterKey,
    decode_key,
    default_key_file,
    generate_key,
    key_id,
    load_master_key,
    write_key_file,
)
from taskengine.store.secret_refs import SECRET_REF, find_secret_refs, resolve_secret_refs
from taskengine.store.sync_bridge import run_sync

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "SECRET_REF",
    "MasterKey",
    "RotationResult",
    "SecretBlobStore",
    "SecretStore",
    "check_secret_name",
    "default_key_file",
    "find_secret_refs",
    "generate_key",
    "key_id",
    "load_master_key",
    "open_secret_store",
    "resolve_secret_refs",
    "run_sync",
    "seal",
    "unseal",
    "write_key_file",
]

_BLOB_VERSION = b"\x01"
_NONCE_BYTES = 12
_AAD_PREFIX = b"taskengine-secret:v1:"
_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")


class SecretBlobStore(Protocol):
    """Where sealed blobs live (the run store implements it); methods may be sync or async."""

    def put_secret(self, name: str, ciphertext: bytes, key_id: str) -> Any: ...

    def get_secret(self, name: str) -> Any: ...  # -> (ciphertext, key_id) | None

    def list_secret_names(self) -> Any: ...  # -> list[str]

    def delete_secret(self, name: str) -> Any: ...  # -> bool | None

    def replace_all_secrets(self, items: dict[str, tuple[bytes, str]]) -> Any: ...


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise SecretError(
            "the secret store needs the 'cryptography' package: pip install 'taskengine[secrets]'"
        ) from exc
    return AESGCM(key)


def check_secret_name(name: str) -> str:
    """`name` if it is a valid secret name (1-128 of letters, digits, `_-./`), else SecretError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SecretError(
            f"invalid secret name {name!r}: use 1-128 letters, digits, '_', '-', '.', '/'"
        )
    return name


def seal(key: bytes, name: str, value: str) -> bytes:
    """Encrypt and authenticate `value`, bound to `name`."""
    nonce = _random.token_bytes(_NONCE_BYTES)
    body = _aesgcm(key).encrypt(nonce, value.encode("utf-8"), _AAD_PREFIX + name.encode("utf-8"))
    return _BLOB_VERSION + nonce + body


def unseal(key: bytes, name: str, blob: bytes, blob_key_id: str) -> str:
    """Decrypt a blob sealed by `seal`; any mismatch is a clear SecretError."""
    current = key_id(key)
    if blob_key_id != current:
        raise SecretError(
            f"secret {name!r} was encrypted with key {blob_key_id}, current key is {current} "
            f"(set {KEY_ENV} or the key file to the key that sealed it)"
        )
    blob = bytes(blob)
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _BLOB_VERSION:
        raise SecretError(f"secret {name!r} is corrupted (not a taskengine secret blob)")
    from cryptography.exceptions import InvalidTag

    nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        plain = _aesgcm(key).decrypt(nonce, body, _AAD_PREFIX + name.encode("utf-8"))
    except InvalidTag as exc:
        raise SecretError(
            f"secret {name!r} failed authentication: the stored blob was tampered with or corrupted"
        ) from exc
    return plain.decode("utf-8")


@dataclass(frozen=True, slots=True)
class RotationResult:
    """What `SecretStore.rotate` did: how many secrets, the new key id, and where the key went."""

    count: int
    old_key_id: str
    new_key_id: str
    new_key: str
    key_file: Path | None

    def __repr__(self) -> str:
        return f"RotationResult(count={self.count}, new_key_id={self.new_key_id!r}, key_file={self.key_file!r})"


class SecretStore:
    """Named secrets, sealed with the master key, persisted through a `SecretBlobStore`.

    The key is loaded lazily: writes create the key file on first use, reads never do.
    Every value handed out is registered with the log redaction filter.
    """

    def __init__(
        self,
        blobs: SecretBlobStore,
        key: str | bytes | MasterKey | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        key_file: str | Path | None = None,
    ) -> None:
        self._blobs = blobs
        self._environ = environ
        self._key_file = key_file
        if isinstance(key, MasterKey) or key is None:
            self._master = key
        elif isinstance(key, bytes) and len(key) == 32:
            self._master = MasterKey(key, "argument")
        else:
            self._master = MasterKey(decode_key(key, "argument"), "argument")

    def master_key(self, *, create: bool = False) -> MasterKey:
        if self._master is None:
            self._master = load_master_key(
                environ=self._environ, key_file=self._key_file, create=create
            )
        return self._master

    async def set(self, name: str, value: str) -> None:
        """Seal and store `value` under `name` (replacing any previous value)."""
        check_secret_name(name)
        if not isinstance(value, str):
            raise SecretError(f"secret {name!r} must be a string")
        master = self.master_key(create=True)
        await _maybe_await(self._blobs.put_secret(name, seal(master.key, name, value), master.id))
        _register(value)

    async def get(self, name: str) -> str:
        """The value of `name`; SecretError when it is missing or cannot be opened."""
        check_secret_name(name)
        found = await _maybe_await(self._blobs.get_secret(name))
        if found is None:
            raise SecretError(f"secret {name!r} is not set (`taskengine secrets set {name}`)")
        blob, blob_key = found
        master = self.master_key()
        try:
            value = unseal(master.key, name, blob, blob_key)
        except SecretError as exc:
            raise _interrupted_rotation_hint(exc, master, blob_key) from exc.__cause__
        _register(value)
        return value

    async def get_many(self, names: Iterable[str]) -> dict[str, str]:
        return {name: await self.get(name) for name in sorted(set(names))}

    async def exists(self, name: str) -> bool:
        return await _maybe_await(self._blobs.get_secret(check_secret_name(name))) is not None

    async def list(self) -> list[tuple[str, str]]:
        """(name, key id) of every stored secret; never values."""
        out = []
        for name in sorted(await _maybe_await(self._blobs.list_secret_names())):
            found = await _maybe_await(self._blobs.get_secret(name))
            if found is not None:
                out.append((name, found[1]))
        return out

    async def names(self) -> builtins.list[str]:
        return sorted(await _maybe_await(self._blobs.list_secret_names()))

    async def delete(self, name: str) -> bool:
        """Remove `name`; False when it did not exist."""
        check_secret_name(name)
        if await _maybe_await(self._blobs.get_secret(name)) is None:
            return False
        result = await _maybe_await(self._blobs.delete_secret(name))
        return True if result is None else bool(result)

    async def rotate(self, new_key: str | None = None) -> RotationResult:
        """Re-encrypt every secret with `new_key` (a fresh one if None) in one transaction.

        Every secret is opened first, so a wrong current key aborts before anything is written.
        With a key file, the new key is staged beside it before the database switches and moved
        into place after; with `TASKENGINE_SECRET_KEY` the caller must update the variable.
        """
        old = self.master_key()
        new_text = new_key.strip() if new_key else generate_key()
        new = MasterKey(decode_key(new_text, "the new key"), old.origin, old.path)
        if new.id == old.id:
            raise SecretError("the new key is the same as the current key")
        names = await self.names()
        plain = {}
        for name in names:
            found = await _maybe_await(self._blobs.get_secret(name))
            if found is not None:
                plain[name] = unseal(old.key, name, found[0], found[1])
        staged = None
        if old.path is not None:
            staged = old.path.with_name(old.path.name + ".new")
            write_key_file(staged, new_text, overwrite=True)
        sealed = {name: (seal(new.key, name, value), new.id) for name, value in plain.items()}
        await _maybe_await(self._blobs.replace_all_secrets(sealed))
        if staged is not None and old.path is not None:
            os.replace(staged, old.path)
        self._master = new
        return RotationResult(len(sealed), old.id, new.id, new_text, old.path)


def _interrupted_rotation_hint(exc: SecretError, master: MasterKey, blob_key: str) -> SecretError:
    """Point at a staged `<key file>.new` that holds the right key (a rotation that crashed)."""
    if master.path is None or blob_key == master.id:
        return exc
    staged = master.path.with_name(master.path.name + ".new")
    try:
        staged_id = key_id(decode_key(staged.read_text("ascii"), str(staged)))
    except (OSError, UnicodeDecodeError, SecretError):
        return exc
    if staged_id != blob_key:
        return exc
    return SecretError(
        f"{exc.message}; a key rotation was interrupted: {staged} holds key {staged_id}, "
        f"move it over {master.path} (`mv {staged} {master.path}`)"
    )


@asynccontextmanager
async def open_secret_store(
    db: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    key_file: str | Path | None = None,
) -> AsyncIterator[SecretStore]:
    """A SecretStore over the run store at `db` (`TASKENGINE_DB` or the default when None)."""
    from taskengine.store import open_store

    store = await open_store(db)
    try:
        yield SecretStore(store, environ=environ, key_file=key_file)
    finally:
        await store.aclose()


def _register(value: str) -> None:
    from taskengine.logs import register_secret

    register_secret(value)
