"""`taskengine mcp` (chains served as MCP tools) and `taskengine tools list` (every tool offered).

Registered by `cli.root`. Errors print one line on stderr, like every other command.
"""

import json
import sys
from typing import Annotated, Any

import typer

from taskengine.cli.common import err, run_async
from taskengine.cli.options import HooksOpt, root_config

__all__ = ["register"]

tools_app = typer.Typer(help="Inspect the tools chains can offer to models.", no_args_is_help=True)


def mcp(
    ctx: typer.Context,
    chain: Annotated[
        list[str] | None,
        typer.Option(
            "--chain", help="Chain file to serve (repeatable; default: the stored chains)."
        ),
    ] = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")
    ] = False,
    host: Annotated[
        str, typer.Option("--host", help="With --http: the address to bind.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="With --http: the port.", min=0, max=65535)
    ] = 8765,
    hooks: HooksOpt = None,
) -> None:
    """Serve chains as MCP tools (stdio by default; --http for streamable HTTP at /mcp)."""
    from taskengine.mcp import require_mcp
    from taskengine.runtime import open_runtime

    require_mcp("taskengine mcp")
    config = root_config(ctx)

    async def go() -> None:
        runtime = await open_runtime(config_path=config, hook_modules=hooks or (), print_fn=err)
        from taskengine.logs import setup_logging

        setup_logging(runtime.settings.logging.level, runtime.settings.logging.json_format)
        async with runtime:
            if http:
                from taskengine.mcp.transports import serve_http

                err(f"taskengine mcp: serving on http://{host}:{port}/mcp")
                await serve_http(runtime, chain or (), host=host, port=port)
            else:
                from taskengine.mcp.transports import serve_stdio

                await serve_stdio(runtime, chain or ())

    run_async(go())


@tools_app.command("list")
def tools_list(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object: {"tools": [...], "errors": [...]}.')
    ] = False,
    hooks: HooksOpt = None,
) -> None:
    """List every tool from every source: local hooks, remote hooks, MCP servers."""
    from taskengine.runtime import open_runtime

    config = root_config(ctx)

    async def go() -> dict[str, Any]:
        runtime = await open_runtime(config_path=config, use_store=False, hook_modules=hooks or ())
        async with runtime:
            return await runtime.hooks.get_schemas_for_supported_hooks()

    rows, problems = _rows(run_async(go()))
    if as_json:
        errors = [{"hook": hook, "error": message} for hook, message in problems]
        sys.stdout.write(json.dumps({"tools": rows, "errors": errors}, ensure_ascii=False) + "\n")
        return
    else:
        width = max((len(r["name"]) for r in rows), default=4)
        for row in rows:
            description = (row["description"] or "").splitlines()[0:1]
            sys.stdout.write(
                f"{row['name']:<{width}}  {row['source']:<6}  {''.join(description)}\n"
            )
    for hook, message in problems:
        err(f"warning: hook {hook!r}: {message}")


def _rows(schemas: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    rows: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    for hook in sorted(schemas):
        entry = schemas[hook]
        if entry.get("error"):
            problems.append((hook, entry["error"]))
            continue
        for tool in entry.get("tools", ()):
            function = tool.get("function", {})
            rows.append(
                {
                    "name": function.get("name", ""),
                    "hook": hook,
                    "source": entry.get("kind", ""),
                    "description": function.get("description") or "",
                    "parameters": function.get("parameters") or {},
                }
            )
    return rows, problems


def register(app: typer.Typer) -> None:
    """Add `mcp` and `tools` to the root command."""
    app.command("mcp")(mcp)
    app.add_typer(tools_app, name="tools")
