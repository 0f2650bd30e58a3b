"""The secret store's master key: making one, finding it, and its key file.

The master key is 32 random bytes in URL-safe base64, taken from `TASKENGINE_SECRET_KEY` or
from a key file that is created with mode 0600 on first use. A key is named by its key id
(a short fingerprint), never printed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets as _random
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from taskengine.errors import SecretError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MasterKey",
    "decode_key",
    "default_key_file",
    "generate_key",
    "key_id",
    "load_master_key",
    "write_key_file",
]

KEY_ENV = "TASKENGINE_SECRET_KEY"
KEY_FILE_ENV = "TASKENGINE_SECRET_KEY_FILE"


def generate_key() -> str:
    """A new master key: 32 random bytes, URL-safe base64 (what `secrets keygen` prints)."""
    return base64.urlsafe_b64encode(_random.token_bytes(32)).decode("ascii")


def decode_key(text: str | bytes, origin: str) -> bytes:
    """The 32 key bytes in `text` (URL-safe base64); `origin` names it in errors."""
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
        return MasterKey(decode_key(env[KEY_ENV], f"${KEY_ENV}"), "env")
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
    return MasterKey(decode_key(text, f"key file {path}"), "file", path, created)
