"""`taskengine config …` and `taskengine secrets …`: inspect settings, manage encrypted secrets.

Mounted by `cli.py`. Secret values are read from stdin or a hidden prompt, never from argv;
`secrets list` never prints values, and `secrets get` prints one only with `--reveal`.
Errors print one line on stderr and exit 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from taskengine.errors import ConfigError, TaskEngineError

__all__ = ["config_app", "secrets_app"]

config_app = typer.Typer(help="Show and check the effective configuration.", no_args_is_help=True)
secrets_app = typer.Typer(help="Manage encrypted secrets in the run store.", no_args_is_help=True)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Settings file (default: --config of taskengine, "
                 "TASKENGINE_CONFIG, or ./taskengine.yaml)."),
]  # fmt: skip
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Store URL holding the secrets (default: the configured db)."),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="Master key file (default: TASKENGINE_SECRET_KEY, "
                 "TASKENGINE_SECRET_KEY_FILE, or secret.key in the user config dir)."),
]  # fmt: skip


def _err(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


def _fails_cleanly(func: F) -> F:
    """User errors become one line on stderr and exit code 1 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TaskEngineError as exc:
            _err(f"error: {exc}")
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def _config_path(ctx: typer.Context, explicit: str | None) -> str | None:
    """This command's --config, else the one given to the root `taskengine` command."""
    if explicit:
        return explicit
    root = ctx.find_root()
    value = root.params.get("config") if root is not ctx else None
    return value if isinstance(value, str) and value else None


def _run(factory: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        return await factory()

    return asyncio.run(main())


# --- config ------------------------------------------------------------------------------


@config_app.command("show")
@_fails_cleanly
def config_show(
    ctx: typer.Context,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override KEY.PATH=VALUE (repeatable).")
    ] = None,
) -> None:
    """Print the effective configuration (file < environment < --set) with secrets masked."""
    from taskengine.config import load_settings, parse_overrides

    settings = load_settings(
        _config_path(ctx, config), overrides=parse_overrides(set_ or []), resolve_secrets=False
    )
    data = settings.masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    import yaml

    typer.echo(f"# source: {settings.source_file or 'defaults and environment'}")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n"))


@config_app.command("check")
def config_check(
    ctx: typer.Context,
    config: ConfigOpt = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override KEY.PATH=VALUE (repeatable).")
    ] = None,
) -> None:
    """Validate the configuration (file, environment, secrets); exit 1 listing every problem."""
    from taskengine.config import load_settings, parse_overrides

    try:
        settings = load_settings(_config_path(ctx, config), overrides=parse_overrides(set_ or []))
    except ConfigError as exc:
        for problem in getattr(exc, "problems", None) or [exc]:
            typer.echo(f"error: {problem}")
        raise typer.Exit(1) from exc
    except TaskEngineError as exc:
        typer.echo(f"error: {exc}")
        raise typer.Exit(1) from exc
    for warning in settings.warnings:
        typer.echo(f"warning: {warning}")
    source = settings.source_file or "defaults and environment"
    typer.echo(
        f"ok: {source} ({len(settings.providers)} providers, {len(settings.remote_hooks)} remote hooks)"
    )


# --- secrets -----------------------------------------------------------------------------


def _db(ctx: typer.Context, db: str | None, config: str | None) -> str | None:
    if db:
        return db
    from taskengine.config import load_settings

    return load_settings(_config_path(ctx, config), resolve_secrets=False).db


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
@_fails_cleanly
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
        _err(
            f"not saved: export TASKENGINE_SECRET_KEY=<this key>, or run "
            f"`taskengine secrets keygen --write` to create the key file {path}"
        )
        return
    write_key_file(path, key)
    _err(f"wrote key file {path} (key id {key_id(load_master_key(key_file=path).key)})")


@secrets_app.command("set")
@_fails_cleanly
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
        _err(
            f"created a new master key: {master.describe()}; back it up, secrets sealed "
            "with it cannot be opened without it"
        )
    _err(f"secret {name!r} stored, sealed with {master.describe()}")


@secrets_app.command("get")
@_fails_cleanly
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
        _err(f"secret {name!r} is set and opens with {key} (use --reveal to print it)")


@secrets_app.command("list")
@_fails_cleanly
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
    _err(f"master key: {key}")
    if as_json:
        rows = [{"name": n, "keyId": k, "currentKey": k == current} for n, k in items]
        typer.echo(json.dumps(rows, indent=2))
        return
    for name, kid in items:
        note = "" if current is None or kid == current else "  (sealed with another key)"
        typer.echo(f"{name}\t{kid}{note}")


@secrets_app.command("delete")
@_fails_cleanly
def secrets_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    db: DbOpt = None,
    config: ConfigOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Delete a secret (exit 1 when it does not exist)."""
    if not _with_store(ctx, db, config, key_file, lambda store: store.delete(name)):
        _err(f"error: secret {name!r} does not exist")
        raise typer.Exit(1)
    _err(f"secret {name!r} deleted")


@secrets_app.command("rotate")
@_fails_cleanly
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
        _err(f"{done}; key file {result.key_file} updated")
        return
    _err(f"{done}; the key came from TASKENGINE_SECRET_KEY: set it to the new key now")
    if not new_key_stdin:
        typer.echo(result.new_key)
