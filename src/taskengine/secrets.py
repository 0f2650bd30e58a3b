"""Encrypted secrets kept in the run store's database, sealed with one master key.

Each secret is sealed with AES-256-GCM (from `cryptography`, never home-made crypto) under a
random 96-bit nonce, with the secret's name as associated data so two blobs cannot be swapped.
Blobs carry the id of the key that sealed them, so a wrong master key is named, not decrypted
into garbage. The master key is 32 random bytes in URL-safe base64, taken from
`TASKENGINE_SECRET_KEY` or from a key file that is created with mode 0600 on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import os
import re
import secrets as _random
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from taskengine.errors import SecretError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MasterKey",
    "RotationResult",
    "SecretBlobStore",
    "SecretStore",
    "default_key_file",
    "find_secret_refs",
    "generate_key",
    "key_id",
    "load_master_key",
    "open_secret_store",
    "resolve_secret_refs",
    "write_key_file",
]

KEY_ENV = "TASKENGINE_SECRET_KEY"
KEY_FILE_ENV = "TASKENGINE_SECRET_KEY_FILE"

_BLOB_VERSION = b"\x01"
_NONCE_BYTES = 12
_AAD_PREFIX = b"taskengine-secret:v1:"
_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")
#: `${secret:name}` inside a config value; `$${` escapes a literal `${`.
SECRET_REF = re.compile(r"\$\$\{|\$\{secret:([^}]*)\}")

T = TypeVar("T")


class SecretBlobStore(Protocol):
    """Where sealed blobs live (the run store implements it); methods may be sync or async."""

    def put_secret(self, name: str, ciphertext: bytes, key_id: str) -> Any: ...

    def get_secret(self, name: str) -> Any: ...  # -> (ciphertext, key_id) | None

    def list_secret_names(self) -> Any: ...  # -> list[str]

    def delete_secret(self, name: str) -> Any: ...  # -> bool | None

    def replace_all_secrets(self, items: dict[str, tuple[bytes, str]]) -> Any: ...


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# --- keys --------------------------------------------------------------------------------


def generate_key() -> str:
    """A new master key: 32 random bytes, URL-safe base64 (what `secrets keygen` prints)."""
    return base64.urlsafe_b64encode(_random.token_bytes(32)).decode("ascii")


def _decode_key(text: str | bytes, origin: str) -> bytes:
    raw = text.strip() if isinstance(text, str) else text.strip().decode("ascii", "replace")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretError(f"master key from {origin} is not URL-safe base64") from exc
    if len(key) != 32:
        raise SecretError(
            f"master key from {origin} decodes to {len(key)} bytes, expected 32 "
            "(generate one with `taskengine secrets keygen`)"
        )
    return key


def key_id(key: bytes) -> str:
    """Short public fingerprint of a key (first 8 hex digits of a domain-separated SHA-256)."""
    return hashlib.sha256(b"taskengine-key-id:" + key).hexdigest()[:8]


def default_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """`TASKENGINE_SECRET_KEY_FILE`, else `secret.key` under the user's config directory."""
    env = os.environ if environ is None else environ
    if env.get(KEY_FILE_ENV):
        return Path(env[KEY_FILE_ENV]).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("taskengine")) / "secret.key"


@dataclass(frozen=True, slots=True)
class MasterKey:
    """The key bytes and where they came from (`env` or a key file path)."""

    key: bytes
    origin: str
    path: Path | None = None
    #: this call wrote the key file (the first `secrets set` on a machine)
    created: bool = False

    def describe(self) -> str:
        """Where the key came from, for the CLI: never the key itself."""
        where = f"key file {self.path}" if self.path is not None else f"${KEY_ENV}"
        if self.origin == "argument":
            where = "the key passed in"
        return f"{where} (key id {self.id})"

    @property
    def id(self) -> str:
        return key_id(self.key)

    def __repr__(self) -> str:  # never print the key itself
        return f"MasterKey(id={self.id!r}, origin={self.origin!r})"


def _check_permissions(path: Path) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretError(
            f"key file {path} has mode {mode:04o}: it is readable or writable by group/others; "
            f"refusing to use it (run `chmod 600 {path}`)"
        )


def write_key_file(path: Path, key: str, *, overwrite: bool = False) -> None:
    """Write a key file with mode 0600, atomically; without `overwrite` an existing file wins."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and not overwrite:
        raise SecretError(f"key file {path} already exists (refusing to overwrite it)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_random.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (key + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            # a hard link never replaces: of two processes racing to create it, one key wins
            os.link(tmp, path)
    except FileExistsError as exc:
        raise SecretError(f"key file {path} already exists (refusing to overwrite it)") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def load_master_key(
    *,
    environ: Mapping[str, str] | None = None,
    key_file: str | Path | None = None,
    create: bool = False,
) -> MasterKey:
    """The master key from `TASKENGINE_SECRET_KEY`, else the key file (made on demand)."""
    env = os.environ if environ is None else environ
    if key_file is None and env.get(KEY_ENV):
        return MasterKey(_decode_key(env[KEY_ENV], f"${KEY_ENV}"), "env")
    created = False
    path = Path(key_file).expanduser() if key_file is not None else default_key_file(env)
    if not path.exists():
        if not create:
            raise SecretError(
                f"no master key: set {KEY_ENV} or create the key file {path} "
                "(`taskengine secrets keygen --write`)"
            )
        try:
            write_key_file(path, generate_key())
            created = True
        except SecretError:
            pass  # another process created it between our check and our write
        except OSError as exc:
            raise SecretError(f"cannot create key file {path}: {exc}") from exc
    try:
        _check_permissions(path)
        text = path.read_text("ascii")
    except OSError as exc:
        raise SecretError(f"cannot read key file {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SecretError(f"key file {path} is not a base64 text key") from exc
    return MasterKey(_decode_key(text, f"key file {path}"), "file", path, created)


# --- the store ---------------------------------------------------------------------------


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise SecretError(
            "the secret store needs the 'cryptography' package: pip install 'taskengine[secrets]'"
        ) from exc
    return AESGCM(key)


def check_secret_name(name: str) -> str:
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
            self._master = MasterKey(_decode_key(key, "argument"), "argument")

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

    async def names(self) -> list[str]:
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
        new = MasterKey(_decode_key(new_text, "the new key"), old.origin, old.path)
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
        staged_id = key_id(_decode_key(staged.read_text("ascii"), str(staged)))
    except (OSError, UnicodeDecodeError, SecretError):
        return exc
    if staged_id != blob_key:
        return exc
    return SecretError(
        f"{exc.message}; a key rotation was interrupted: {staged} holds key {staged_id}, "
        f"move it over {master.path} (`mv {staged} {master.path}`)"
    )


# --- references inside configuration -------------------------------------------------


def find_secret_refs(value: Any) -> set[str]:
    """Names of every `${secret:name}` inside strings of a nested structure."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, str):
            found.update(m.group(1) for m in SECRET_REF.finditer(v) if m.group(1) is not None)
        elif isinstance(v, Mapping):
            for item in v.values():
                walk(item)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item)

    walk(value)
    return found


def resolve_secret_refs(value: Any, lookup: Mapping[str, str] | Callable[[str], str]) -> Any:
    """Replace `${secret:name}` in every string of a nested structure (other `${…}` untouched)."""
    get = lookup.__getitem__ if isinstance(lookup, Mapping) else lookup

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)  # `$${` stays for the env expander to unescape
        try:
            return get(m.group(1))
        except KeyError as exc:
            raise SecretError(f"secret {m.group(1)!r} is not set") from exc

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return SECRET_REF.sub(sub, v) if "${" in v else v
        if isinstance(v, Mapping):
            return {k: walk(item) for k, item in v.items()}
        if isinstance(v, list | tuple):
            return [walk(item) for item in v]
        return v

    return walk(value)


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


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, also when this thread already runs an event loop."""
    import asyncio
    import threading

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coro(factory))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_as_coro(factory))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="taskengine-sync-bridge")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _as_coro(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def _register(value: str) -> None:
    from taskengine.logs import register_secret

    register_secret(value)
