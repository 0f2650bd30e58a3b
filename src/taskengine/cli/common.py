"""What every command shares, importable without Typer: the root options, messages, input text.

Kept free of Typer, Click and Rich so the fast `taskengine run` path (see `fast_run`) can use it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = [
    "STATE",
    "InputProblem",
    "config_path",
    "drop_final_newline",
    "err",
    "read_input",
    "run_async",
    "setup_logging",
]

#: the root options (`taskengine --debug --config FILE …`), set before a command runs
STATE: dict[str, Any] = {"debug": False, "config": None}


def config_path(local: str | None) -> str | None:
    """This command's --config, else the one given before the command."""
    return local or STATE["config"]


def err(text: str) -> None:
    """One message on stderr, ending with exactly one newline."""
    sys.stderr.write(text.rstrip("\n") + "\n")


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion: the commands' one bridge from sync to async.

    asyncio is imported here, not at the top, so `taskengine --help` does not pay for it.
    """
    import asyncio

    return asyncio.run(coro)


def setup_logging(settings: Any) -> None:
    """Apply the settings' log level and format."""
    from taskengine.logs import setup_logging as setup

    setup(settings.logging.level, settings.logging.json_format)


class InputProblem(Exception):
    """`--input`/`--input-file` cannot be used as given (the commands report it as a usage error)."""

    def __init__(self, message: str, param_hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param_hint = param_hint


def drop_final_newline(text: str) -> str:
    """`echo x | taskengine run … --input-file -` means "x", as does a file an editor saved."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def read_input(text: str | None, file: str | None) -> str:
    """The input text of `--input TEXT` or `--input-file PATH` ('-' = stdin), else ""."""
    if text is not None and file is not None:
        raise InputProblem("use either --input or --input-file, not both")
    if file is not None:
        if file == "-":
            return drop_final_newline(sys.stdin.read())
        try:
            return drop_final_newline(Path(file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputProblem(
                f"cannot read {file}: {exc.strerror}", param_hint="--input-file"
            ) from exc
        except UnicodeDecodeError as exc:
            raise InputProblem(
                f"{file} is not UTF-8 text (byte {exc.start})", param_hint="--input-file"
            ) from exc
    return text if text is not None else ""
