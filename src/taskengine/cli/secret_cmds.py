"""`taskengine secrets …`: manage encrypted secrets in the run store.

Secret values are read from stdin or a hidden prompt, never from argv; `secrets list` never
prints values, and `secrets get` prints one only with `--reveal`. Errors print one line on
stderr and exit 1.
"""

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from taskengine.cli.common import err, run_async
from taskengine.cli.options import ConfigOpt, command_config, fails_cleanly
from taskengine.errors import TaskEngineError

__all__ = ["secrets_app"]

secrets_app = typer.Typer(help="Manage encrypted secrets in the run store.", no_args_is_help=True)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Store URL holding the secrets (default: the configured db)."),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="Master key file (default: TASKENGINE_SECRET_KEY, "
                 "TASKENGINE_SECRET_KEY_FILE, or secret.key in the user config dir)."),
]  # fmt: skip


def _run(factory: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        return await factory()

    return run_async(main())


def _db(ctx: typer.Context, db: str | None, config: str | None) -> str | None:
    if db:
        return db
    from taskengine.config import load_settings

    return load_settings(command_config(ctx, config), resolve_secrets=False).db


def _with_store(
    ctx: typer.Context, db: str | None, config: str | None, key_file: Path | None, action: Callable
) -> Any:
    from taskengine.store.secret_store import open_secret_store

    url = _db(ctx, db, config)

    async def go() -> Any:
        async with open_secret_store(url, key_file=key_file) as store:
            return await action(store)

    return _run(go)


def _key_in_use(store: Any) -> str:
    """Which master key a command used (for the one-line notes on stderr)."""
    try:
        return str(store.master_key().describe())
    except TaskEngineError as exc:
        return f"no usable master key ({exc})"


def _read_value(prompt: str) -> str:
    """A secret from stdin when piped, else a hidden, confirmed prompt."""
    if sys.stdin is not None and not sys.stdin.isatty():
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    else:
        value = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    if not value:
        raise TaskEngineError("empty value: nothing was read from stdin or the prompt")
    return value


@secrets_app.command("keygen")
@fails_cleanly
def secrets_keygen(
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Write it to the key file (mode 0600) instead of printing it."
        ),
    ] = False,
    key_file: KeyFileOpt = None,
) -> None:
    """Make a new master key (32 random bytes, URL-safe base64); --write saves it as the key file.

    First use on a machine: `taskengine secrets keygen --write`, then `taskengine secrets set NAME`.
    Without --write the key is only printed: put it in TASKENGINE_SECRET_KEY (for containers/CI).
    """
    from taskengine.store.secret_store import (
        default_key_file,
        generate_key,
        key_id,
        load_master_key,
        write_key_file,
    )

    key = generate_key()
    path = key_file or default_key_file()
    if not write:
        typer.echo(key)
        err(
            f"not saved: export TASKENGINE_SECRET_KEY=<this key>, or run "
            f"`taskengine secrets keygen --write` to create the key file {path}"
        )
        return
    write_key_file(path, key)
    err(f"wrote key file {path} (key id {key_id(load_master_key(key_file=path).key)})")


@secrets_app.command("set")
@fails_cleanly
def secrets_set(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="Secret name (the value is read from stdin or a prompt).")
    ],
    db: DbOpt = None,
    config: ConfigOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Store a secret; the value comes from stdin or a hidden prompt, never the command line."""
    from taskengine.store.secret_store import check_secret_name

    check_secret_name(name)
    value = _read_value(f"Value for {name}")

    async def action(store: Any) -> Any:
        await store.set(name, value)
        return store.master_key()

    master = _with_store(ctx, db, config, key_file, action)
    if master.created:
        err(
            f"created a new master key: {master.describe()}; back it up, secrets sealed "
            "with it cannot be opened without it"
        )
    err(f"secret {name!r} stored, sealed with {master.describe()}")


@secrets_app.command("get")
@fails_cleanly
def secrets_get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Really print the value on stdout.")
    ] = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Decrypt a secret; prints the value only with --reveal (otherwise just checks it opens)."""

    async def action(store: Any) -> tuple[str, str]:
        return await store.get(name), _key_in_use(store)

    value, key = _with_store(ctx, db, config, key_file, action)
    if reveal:
        typer.echo(value)
    else:
        err(f"secret {name!r} is set and opens with {key} (use --reveal to print it)")


@secrets_app.command("list")
@fails_cleanly
def secrets_list(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print name, keyId, currentKey of each as JSON.")
    ] = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """List secret names and the id of the key that sealed each (never values)."""

    async def action(store: Any) -> tuple[list[tuple[str, str]], str | None, str]:
        try:
            current: str | None = store.master_key().id
        except TaskEngineError:
            current = None
        return await store.list(), current, _key_in_use(store)

    items, current, key = _with_store(ctx, db, config, key_file, action)
    err(f"master key: {key}")
    if as_json:
        rows = [{"name": n, "keyId": k, "currentKey": k == current} for n, k in items]
        typer.echo(json.dumps(rows, indent=2))
        return
    for name, kid in items:
        note = "" if current is None or kid == current else "  (sealed with another key)"
        typer.echo(f"{name}\t{kid}{note}")


@secrets_app.command("delete")
@fails_cleanly
def secrets_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    db: DbOpt = None,
    config: ConfigOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Delete a secret (exit 1 when it does not exist)."""
    if not _with_store(ctx, db, config, key_file, lambda store: store.delete(name)):
        err(f"error: secret {name!r} does not exist")
        raise typer.Exit(1)
    err(f"secret {name!r} deleted")


@secrets_app.command("rotate")
@fails_cleanly
def secrets_rotate(
    ctx: typer.Context,
    new_key_stdin: Annotated[
        bool,
        typer.Option(
            "--new-key-stdin", help="Read the new key from stdin instead of generating one."
        ),
    ] = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Re-encrypt every secret with a new master key in one transaction."""
    new_key = sys.stdin.readline().strip() if new_key_stdin else None
    if new_key_stdin and not new_key:
        raise TaskEngineError("--new-key-stdin: no key on stdin")
    result = _with_store(ctx, db, config, key_file, lambda store: store.rotate(new_key))
    done = f"re-encrypted {result.count} secrets: key {result.old_key_id} -> {result.new_key_id}"
    if result.key_file is not None:
        err(f"{done}; key file {result.key_file} updated")
        return
    err(f"{done}; the key came from TASKENGINE_SECRET_KEY: set it to the new key now")
    if not new_key_stdin:
        typer.echo(result.new_key)
