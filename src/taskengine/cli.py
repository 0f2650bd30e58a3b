"""The `taskengine` command line: run, validate, schema, graph, resume, runs, serve, config, secrets.

Every user-caused failure prints one line on stderr and exits non-zero; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from taskengine.cli_admin import ConfigOpt
from taskengine.errors import TaskEngineError

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer._click import exceptions as _tclick
except ImportError:  # pragma: no cover - older typer raises click's own
    _tclick = click.exceptions

_CLICK_ERRORS = tuple({click.ClickException, _tclick.ClickException})
_ABORTS = tuple({click.exceptions.Abort, getattr(_tclick, "Abort", click.exceptions.Abort)})
_EXITS = tuple({click.exceptions.Exit, typer.Exit, getattr(_tclick, "Exit", click.exceptions.Exit)})

app = typer.Typer(
    name="taskengine",
    help="Run declarative LLM task chains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Inspect stored runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

_state: dict[str, Any] = {"debug": False, "config": None}

HooksOpt = Annotated[
    list[str] | None,
    typer.Option("--hooks", help="Python file or module registering hooks (repeatable)."),
]


def _json_opt(what: str) -> Any:
    return typer.Option("--json", help=f"Print {what} as JSON on stdout.")


def _config(local: str | None) -> str | None:
    """This command's --config, else the one given before the command."""
    return local or _state["config"]


def _err(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _run_reporting(coro: Any, as_json: bool) -> Any:
    """Run; with --json a failed run still prints its JSON (status, error, steps) on stdout."""
    try:
        return _run(coro)
    except TaskEngineError as exc:
        if as_json and exc.run_result is not None:
            sys.stdout.write(json.dumps(exc.run_result.to_dict(), ensure_ascii=False) + "\n")
        raise


def _print_version(value: bool) -> None:
    if value:
        from taskengine import __version__

        sys.stdout.write(f"taskengine {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", help="Settings file (default: TASKENGINE_CONFIG or ./taskengine.yaml)."
        ),
    ] = None,
) -> None:
    _state["debug"] = debug
    _state["config"] = config


# --- run -----------------------------------------------------------------------------------


def _drop_final_newline(text: str) -> str:
    """`echo x | taskengine run … --input-file -` means "x", as does a file an editor saved."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _read_input(text: str | None, file: str | None) -> str:
    if text is not None and file is not None:
        raise typer.BadParameter("use either --input or --input-file, not both")
    if file is not None:
        if file == "-":
            return _drop_final_newline(sys.stdin.read())
        try:
            return _drop_final_newline(Path(file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {file}: {exc.strerror}", param_hint="--input-file"
            ) from exc
        except UnicodeDecodeError as exc:
            raise typer.BadParameter(
                f"{file} is not UTF-8 text (byte {exc.start})", param_hint="--input-file"
            ) from exc
    return text if text is not None else ""


def _setup_logging(settings: Any) -> None:
    from taskengine.logs import setup_logging

    setup_logging(settings.logging.level, settings.logging.json_format)


class _DeltaStream:
    """`--stream`: model tokens on stderr, each step's text ending on its own line."""

    def __init__(self) -> None:
        self.open_line = False

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "delta" and event["delta"]:
            sys.stderr.write(event["delta"])
            sys.stderr.flush()
            self.open_line = not event["delta"].endswith("\n")
        elif kind in ("step_start", "step_end", "run_end") and self.open_line:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.open_line = False


class _Progress:
    """On a terminal: a live status line naming the running task and the steps done so far."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.status = self.console.status("starting…")
        self.steps = 0

    def __enter__(self) -> _Progress:
        self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.stop()

    def print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "step_start":
            retry = f", attempt {event['attempt']}" if event["attempt"] > 1 else ""
            from rich.markup import escape

            self.status.update(
                f"step {self.steps + 1}: [bold]{escape(event['taskID'])}[/bold] "
                f"({escape(event['handler'])}{retry})"
            )
        elif event["type"] == "step_end":
            self.steps += 1


def _print_output(result: Any, as_json: bool) -> None:
    from taskengine.datatypes import to_display

    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(to_display(result.output) + "\n")
        if result.status == "paused":
            _err(
                f"paused before task {result.paused_at!r}; continue with: taskengine resume {result.run_id}"
            )


@app.command()
def run(
    chain: Annotated[str, typer.Argument(help="Chain file (YAML or JSON).")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="Input text.")] = None,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input-file", help="Read input from a file ('-' = stdin; one final newline dropped)."
        ),
    ] = None,
    input_type: Annotated[
        str,
        typer.Option(
            "--input-type",
            help="Data type of the input (string, json, int, chat_history, openai_chat …).",
        ),
    ] = "string",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with runId, output, state.")
    ] = False,
    hooks: HooksOpt = None,
    break_at: Annotated[
        list[str] | None, typer.Option("--break", help="Pause before this task (repeatable).")
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not record the run (no resume).")
    ] = False,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print model tokens to stderr as they arrive.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Run a chain and print its output."""
    from taskengine.chain import load_chain
    from taskengine.datatypes import DataType
    from taskengine.runtime import open_runtime

    text = _read_input(input, input_file)
    definition = load_chain(Path(chain))
    dtype = DataType.from_string(input_type)

    progress = _Progress() if sys.stderr.isatty() and not stream else None

    async def go() -> Any:
        runtime = await open_runtime(
            config_path=_config(config),
            use_store=not no_store,
            hook_modules=hooks or (),
            print_fn=progress.print if progress else _err,
        )
        _setup_logging(runtime.settings)
        on_event = _DeltaStream().on_event if stream else (progress.on_event if progress else None)
        async with runtime:
            return await runtime.env.exec_env(
                definition, text, dtype, breakpoints=break_at or (), on_event=on_event
            )

    if progress is None:
        _print_output(_run_reporting(go(), as_json), as_json)
        return
    with progress:
        result = _run_reporting(go(), as_json)
    _print_output(result, as_json)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (see `taskengine runs list`).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="VAR=VALUE to change before continuing (repeatable; VALUE may be JSON)."
        ),
    ] = None,
    as_json: Annotated[bool, _json_opt("the run (runId, output, state, status)")] = False,
    hooks: HooksOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Continue a paused, failed or interrupted run from its last checkpoint."""
    from taskengine.runtime import open_runtime

    values: dict[str, Any] = {}
    for item in set_ or ():
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected VAR=VALUE, got {item!r}", param_hint="--set")
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw

    async def go() -> Any:
        runtime = await open_runtime(
            config_path=_config(config), hook_modules=hooks or (), print_fn=_err
        )
        _setup_logging(runtime.settings)
        async with runtime:
            return await runtime.env.resume(run_id, set_vars=values or None)

    _print_output(_run_reporting(go(), as_json), as_json)


# --- definitions ---------------------------------------------------------------------------


@app.command()
def validate(
    chains: Annotated[list[str], typer.Argument(help="Chain files to check.")],
    hooks: Annotated[
        list[str] | None,
        typer.Option(
            "--hooks",
            help="Also check hook and tool names against these hook files or modules "
            "(repeatable; remote_hooks of the settings count too).",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Check chain files; print every problem with its field path (exit 1 on errors)."""
    from taskengine.chain import parse_chain
    from taskengine.errors import ChainLoadError

    failed = False
    parsed: list[tuple[str, Any, list[Any]]] = []
    for path in chains:
        try:
            chain, problems = parse_chain(Path(path))
        except ChainLoadError as exc:
            _err(f"{path}: error: {exc.message}")
            failed = True
            continue
        parsed.append((path, chain, problems))
    if hooks:
        _add_hook_problems(parsed, hooks, _config(config))
    for path, chain, problems in parsed:
        for problem in problems:
            if problem.severity != "info":
                _err(f"{path}: {problem}")
        if any(p.severity == "error" for p in problems):
            failed = True
            continue
        warnings = sum(1 for p in problems if p.severity == "warning")
        tasks = len(chain.tasks) if chain else 0
        sys.stdout.write(
            f"{path}: ok ({tasks} tasks" + (f", {warnings} warnings" if warnings else "") + ")\n"
        )
    if failed:
        raise typer.Exit(1)


def _add_hook_problems(
    parsed: list[tuple[str, Any, list[Any]]], hook_modules: list[str], config: str | None
) -> None:
    """`validate --hooks`: append unknown hooks and tools to each loadable chain's problems."""
    from taskengine.hooks.check import check_chain_hooks
    from taskengine.runtime import open_runtime

    async def go() -> None:
        runtime = await open_runtime(config_path=config, use_store=False, hook_modules=hook_modules)
        async with runtime:
            for _, chain, problems in parsed:
                if chain is not None:
                    problems.extend(await check_chain_hooks(chain, runtime.hooks))

    _run(go())


@app.command()
def schema() -> None:
    """Print the JSON Schema of chain files (for editor autocompletion)."""
    from taskengine.chain import chain_json_schema

    sys.stdout.write(json.dumps(chain_json_schema(), indent=2) + "\n")


@app.command()
def graph(chain: Annotated[str, typer.Argument(help="Chain file.")]) -> None:
    """Print the chain's state machine as a Mermaid flowchart."""
    from taskengine.chain import load_chain
    from taskengine.chain.mermaid import to_mermaid

    sys.stdout.write(to_mermaid(load_chain(chain)) + "\n")


# --- runs ----------------------------------------------------------------------------------

#: the statuses `runs list --status` accepts (store.base.RUN_STATUSES, without importing the store)
_RUN_STATUSES = ("pending", "queued", "running", "paused", "succeeded", "failed", "interrupted")


@runs_app.command("list")
def runs_list(
    as_json: Annotated[bool, _json_opt("the runs (runId, chainId, status, createdAt …)")] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many runs to show.")
    ] = 20,
    status: Annotated[
        str | None,
        typer.Option("--status", help=f"Only runs with this status ({', '.join(_RUN_STATUSES)})."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """List recent runs, newest first."""
    from taskengine.runs_view import list_runs_cmd

    if status is not None and status not in _RUN_STATUSES:
        raise typer.BadParameter(
            f"unknown status {status!r}; one of: {', '.join(_RUN_STATUSES)}", param_hint="--status"
        )
    list_runs_cmd(_config(config), as_json=as_json, limit=limit, status=status)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (see `taskengine runs list`).")],
    as_json: Annotated[
        bool, _json_opt("the run with its steps, variables, output and error")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Show one run with its step history."""
    from taskengine.runs_view import show_run_cmd

    show_run_cmd(_config(config), run_id, as_json=as_json)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Default: server.host in the settings.")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Default: server.port in the settings."),
    ] = None,
    hooks: HooksOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Start the HTTP server (FastAPI + uvicorn)."""
    try:
        import uvicorn  # noqa: F401

        from taskengine.server import create_app
    except ImportError as exc:
        raise TaskEngineError(
            f"the server needs extra packages: pip install 'taskengine[server]' ({exc})"
        ) from exc
    from taskengine.config import load_settings
    from taskengine.server.listen import bind_listener, check_startup, serve_forever

    settings = load_settings(_config(config))
    host = host or settings.server.host
    port = port or settings.server.port
    bind_listener(host, port).close()  # a busy port fails here, before the app is built
    check_startup(settings, hooks or ())
    _setup_logging(settings)
    app_ = create_app(settings, hook_modules=hooks or ())
    from taskengine.server.app import tune_gc_for_service

    tune_gc_for_service()
    server = settings.server
    serve_forever(
        app_, host, port, keep_alive=server.keep_alive_timeout, grace=server.shutdown_grace
    )


def _mount_admin() -> None:
    try:
        from taskengine.cli_admin import config_app, secrets_app
    except ImportError:  # pragma: no cover - the admin commands ship with the package
        return
    app.add_typer(config_app, name="config")
    app.add_typer(secrets_app, name="secrets")


_mount_admin()


def _mount_mcp() -> None:
    from taskengine.cli_mcp import register

    register(app)


_mount_mcp()


def _mount_queue() -> None:
    from taskengine.cli_queue import register

    register(app)


_mount_queue()


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the Typer app, turning errors into one line on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="taskengine", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except _EXITS as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except _CLICK_ERRORS as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except _ABORTS:
        _err("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except TaskEngineError as exc:
        if debug:
            raise
        message = str(exc)
        if exc.run_id and exc.run_id not in message:
            message += f" (run {exc.run_id}: taskengine runs show {exc.run_id})"
        _err(f"error: {message}")
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(70)


if __name__ == "__main__":  # pragma: no cover
    main()
