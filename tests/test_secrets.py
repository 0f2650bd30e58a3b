"""The encrypted secret store: round trips, wrong keys, tampering, rotation, key files."""

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from taskengine.errors import SecretError
from taskengine.logs import clear_registered_secrets, redact
from taskengine.store.secret_store import (
    SecretStore,
    default_key_file,
    find_secret_refs,
    generate_key,
    key_id,
    load_master_key,
    open_secret_store,
    resolve_secret_refs,
    run_sync,
    write_key_file,
)


class MemoryBlobs:
    """The SecretBlobStore protocol over a dict (async, like the real run store)."""

    def __init__(self):
        self.rows = {}
        self.replaced = 0

    async def put_secret(self, name, ciphertext, key_id):
        self.rows[name] = (bytes(ciphertext), key_id)

    async def get_secret(self, name):
        return self.rows.get(name)

    async def list_secret_names(self):
        return sorted(self.rows)

    async def delete_secret(self, name):
        return self.rows.pop(name, None) is not None

    async def replace_all_secrets(self, items):
        self.replaced += 1
        self.rows = dict(items)


class SyncBlobs(MemoryBlobs):
    """Same, with plain (non-async) methods: the store accepts both."""

    def put_secret(self, name, ciphertext, key_id):
        self.rows[name] = (bytes(ciphertext), key_id)

    def get_secret(self, name):
        return self.rows.get(name)

    def list_secret_names(self):
        return sorted(self.rows)

    def delete_secret(self, name):
        return self.rows.pop(name, None) is not None

    def replace_all_secrets(self, items):
        self.rows = dict(items)


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch):
    monkeypatch.delenv("TASKENGINE_SECRET_KEY", raising=False)
    monkeypatch.delenv("TASKENGINE_SECRET_KEY_FILE", raising=False)
    yield
    clear_registered_secrets()


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


async def test_round_trip_list_delete():
    blobs = MemoryBlobs()
    store = SecretStore(blobs, generate_key())
    await store.set("openai_key", "sk-test-0123456789")
    await store.set("token", "t0ken-value")
    assert await store.get("openai_key") == "sk-test-0123456789"
    assert [name for name, _ in await store.list()] == ["openai_key", "token"]
    assert {kid for _, kid in await store.list()} == {store.master_key().id}
    # the database holds ciphertext only
    assert b"sk-test" not in blobs.rows["openai_key"][0]
    assert await store.delete("token") is True
    assert await store.delete("token") is False
    with pytest.raises(SecretError, match="secret 'token' is not set"):
        await store.get("token")


async def test_sync_blob_store_works_too():
    store = SecretStore(SyncBlobs(), generate_key())
    await store.set("a", "value-a")
    assert await store.get("a") == "value-a"
    assert await store.exists("a") and not await store.exists("b")


async def test_values_handed_out_are_redacted_from_logs():
    store = SecretStore(MemoryBlobs(), generate_key())
    await store.set("db_pass", "correct-horse-battery")
    await store.get("db_pass")
    assert redact("connecting with correct-horse-battery now") == "connecting with *** now"


async def test_wrong_key_is_named_never_garbage():
    blobs = MemoryBlobs()
    first = SecretStore(blobs, generate_key())
    await first.set("x", "secret-x")
    other_key = generate_key()
    second = SecretStore(blobs, other_key)
    with pytest.raises(SecretError) as err:
        await second.get("x")
    message = str(err.value)
    assert f"encrypted with key {first.master_key().id}" in message
    assert f"current key is {key_id(base64.urlsafe_b64decode(other_key))}" in message


async def test_tampered_blob_fails_authentication():
    blobs = MemoryBlobs()
    store = SecretStore(blobs, generate_key())
    await store.set("x", "secret-x")
    blob, kid = blobs.rows["x"]
    flipped = bytearray(blob)
    flipped[-1] ^= 0x01
    blobs.rows["x"] = (bytes(flipped), kid)
    with pytest.raises(SecretError, match="tampered with or corrupted"):
        await store.get("x")
    blobs.rows["x"] = (b"\x01short", kid)
    with pytest.raises(SecretError, match="corrupted"):
        await store.get("x")


async def test_blobs_cannot_be_swapped_between_names():
    blobs = MemoryBlobs()
    store = SecretStore(blobs, generate_key())
    await store.set("admin_token", "admin-secret")
    await store.set("guest_token", "guest-secret")
    blobs.rows["guest_token"] = blobs.rows["admin_token"]  # the name is associated data
    with pytest.raises(SecretError, match=r"guest_token.*failed authentication"):
        await store.get("guest_token")


async def test_invalid_names_and_values():
    store = SecretStore(MemoryBlobs(), generate_key())
    with pytest.raises(SecretError, match="invalid secret name"):
        await store.set("has space", "v")
    with pytest.raises(SecretError, match="must be a string"):
        await store.set("n", 42)


async def test_key_file_created_0600_on_first_write(tmp_path):
    key_file = tmp_path / "conf" / "secret.key"
    env = {"TASKENGINE_SECRET_KEY_FILE": str(key_file)}
    store = SecretStore(MemoryBlobs(), environ=env)
    await store.set("x", "value-x")
    assert key_file.exists()
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) & 0o077 == 0
    again = load_master_key(environ=env)
    assert again.id == store.master_key().id and again.path == key_file


async def test_reading_never_creates_a_key(tmp_path):
    env = {"TASKENGINE_SECRET_KEY_FILE": str(tmp_path / "missing.key")}
    blobs = MemoryBlobs()
    await SecretStore(blobs, generate_key()).set("x", "value-x")
    store = SecretStore(blobs, environ=env)
    with pytest.raises(SecretError, match="no master key"):
        await store.get("x")
    assert not (tmp_path / "missing.key").exists()


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_is_refused(tmp_path, bad_mode):
    key_file = tmp_path / "secret.key"
    write_key_file(key_file, generate_key())
    os.chmod(key_file, bad_mode)
    with pytest.raises(SecretError, match=r"mode 0\d+.*refusing to use it.*chmod 600"):
        load_master_key(key_file=key_file)


def test_env_key_wins_and_bad_keys_are_explained(tmp_path):
    key = generate_key()
    master = load_master_key(environ={"TASKENGINE_SECRET_KEY": key})
    assert master.origin == "env" and master.path is None
    assert key not in repr(master)
    with pytest.raises(SecretError, match="decodes to 16 bytes, expected 32"):
        load_master_key(
            environ={"TASKENGINE_SECRET_KEY": base64.urlsafe_b64encode(b"x" * 16).decode()}
        )
    with pytest.raises(SecretError, match="not URL-safe base64"):
        load_master_key(environ={"TASKENGINE_SECRET_KEY": "###"})


def test_keygen_format():
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 44 and key.endswith("=")
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
        assert len(base64.urlsafe_b64decode(key)) == 32
    raw = base64.urlsafe_b64decode(next(iter(keys)))
    assert len(key_id(raw)) == 8 and int(key_id(raw), 16) >= 0


def test_default_key_file_follows_env(tmp_path):
    assert default_key_file({"TASKENGINE_SECRET_KEY_FILE": str(tmp_path / "k")}) == tmp_path / "k"
    assert default_key_file({}).name == "secret.key"


def test_write_key_file_refuses_to_overwrite(tmp_path):
    path = tmp_path / "k"
    write_key_file(path, generate_key())
    with pytest.raises(SecretError, match="already exists"):
        write_key_file(path, generate_key())


async def test_rotation_with_key_file(tmp_path):
    key_file = tmp_path / "secret.key"
    blobs = MemoryBlobs()
    store = SecretStore(blobs, key_file=key_file)
    for i in range(3):
        await store.set(f"s{i}", f"value-{i}")
    old_id = store.master_key().id
    result = await store.rotate()
    assert result.count == 3 and result.old_key_id == old_id and result.key_file == key_file
    assert blobs.replaced == 1  # one transaction
    assert {kid for _, kid in blobs.rows.values()} == {result.new_key_id}
    assert mode(key_file) == 0o600 and not key_file.with_name("secret.key.new").exists()
    reopened = SecretStore(blobs, key_file=key_file)
    assert reopened.master_key().id == result.new_key_id
    assert [await reopened.get(f"s{i}") for i in range(3)] == ["value-0", "value-1", "value-2"]


async def test_interrupted_rotation_points_at_the_staged_key(tmp_path):
    key_file = tmp_path / "secret.key"
    blobs = MemoryBlobs()
    store = SecretStore(blobs, key_file=key_file)
    await store.set("a", "value-a")
    old_text = key_file.read_text()
    await store.rotate()
    # simulate a crash after the database switched but before the key file moved into place
    new_text = key_file.read_text()
    key_file.unlink()
    write_key_file(key_file, old_text.strip())
    write_key_file(key_file.with_name("secret.key.new"), new_text.strip())
    with pytest.raises(
        SecretError, match=r"rotation was interrupted: .*secret\.key\.new holds key"
    ):
        await SecretStore(blobs, key_file=key_file).get("a")


async def test_rotation_with_env_key_returns_the_new_key():
    old = generate_key()
    blobs = MemoryBlobs()
    store = SecretStore(blobs, environ={"TASKENGINE_SECRET_KEY": old})
    await store.set("a", "value-a")
    new = generate_key()
    result = await store.rotate(new)
    assert result.key_file is None and result.new_key == new
    assert await SecretStore(blobs, new).get("a") == "value-a"
    with pytest.raises(SecretError, match="encrypted with key"):
        await SecretStore(blobs, old).get("a")
    with pytest.raises(SecretError, match="same as the current key"):
        await SecretStore(blobs, new).rotate(new)


async def test_rotation_with_the_wrong_current_key_changes_nothing():
    blobs = MemoryBlobs()
    await SecretStore(blobs, generate_key()).set("a", "value-a")
    before = dict(blobs.rows)
    with pytest.raises(SecretError, match="encrypted with key"):
        await SecretStore(blobs, generate_key()).rotate()
    assert blobs.rows == before and blobs.replaced == 0


def test_secret_references():
    data = {"a": "${secret:one}", "b": ["x-${secret:two}-y", "$${secret:literal}"], "c": 3}
    assert find_secret_refs(data) == {"one", "two"}
    out = resolve_secret_refs(data, {"one": "1", "two": "2"})
    assert out == {"a": "1", "b": ["x-2-y", "$${secret:literal}"], "c": 3}
    with pytest.raises(SecretError, match="'one' is not set"):
        resolve_secret_refs(data, {})


async def test_run_sync_inside_a_running_loop():
    async def answer():
        return 42

    assert run_sync(answer) == 42


# --- against the real run store --------------------------------------------------------------


async def test_round_trip_and_rotation_in_sqlite_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    key_file = tmp_path / "secret.key"
    async with open_secret_store(url, key_file=key_file) as store:
        await store.set("openai", "sk-sqlite-secret")
        await store.set("hook_token", "bearer-value")
        result = await store.rotate()
        assert result.count == 2
    async with open_secret_store(url, key_file=key_file) as store:
        assert await store.get("openai") == "sk-sqlite-secret"
        assert [n for n, _ in await store.list()] == ["hook_token", "openai"]
        assert await store.delete("openai")
    assert b"sk-sqlite-secret" not in (tmp_path / "runs.db").read_bytes()


@pytest.mark.postgres
async def test_round_trip_and_rotation_in_postgres_store(pg_dsn, pg_schema, tmp_path):
    url = f"{pg_dsn}?schema={pg_schema}"
    key = generate_key()
    async with open_secret_store(url, environ={"TASKENGINE_SECRET_KEY": key}) as store:
        await store.set("pg_secret", "value-in-postgres")
        result = await store.rotate()
        assert result.key_file is None
    async with open_secret_store(url, environ={"TASKENGINE_SECRET_KEY": result.new_key}) as store:
        assert await store.get("pg_secret") == "value-in-postgres"
    async with open_secret_store(url, environ={"TASKENGINE_SECRET_KEY": key}) as store:
        with pytest.raises(SecretError, match="encrypted with key"):
            await store.get("pg_secret")


def test_the_package_folder_does_not_shadow_the_stdlib_secrets_module():
    """With the package folder itself on sys.path (a script run from inside it, or a tool that
    adds it), `import secrets` must still be the standard library's: starlette's
    `from secrets import token_hex` once failed on taskengine's own `secrets.py`."""
    import taskengine

    package_dir = Path(taskengine.__file__).parent
    assert not (package_dir / "secrets.py").exists()
    code = (
        f"import sys; sys.path.insert(0, {str(package_dir)!r}); import secrets; "
        "print(len(secrets.token_hex(4)), secrets.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    length, where = out.stdout.split(maxsplit=1)
    assert length == "8"
    assert not Path(where.strip()).is_relative_to(package_dir)
