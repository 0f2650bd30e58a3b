"""`taskengine config show` and `taskengine config check`: the effective settings.

Errors print one line on stderr and exit 1.
"""

import json
from typing import Annotated

import typer

from taskengine.cli.options import ConfigOpt, command_config, fails_cleanly
from taskengine.errors import ConfigError, TaskEngineError

__all__ = ["config_app"]

config_app = typer.Typer(help="Show and check the effective configuration.", no_args_is_help=True)


@config_app.command("show")
@fails_cleanly
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
        command_config(ctx, config), overrides=parse_overrides(set_ or []), resolve_secrets=False
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
        settings = load_settings(command_config(ctx, config), overrides=parse_overrides(set_ or []))
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
