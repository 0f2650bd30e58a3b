"""The plain `taskengine run` skips Typer: it parses only what it is sure of, and runs the same."""

import json
import os
import subprocess
import sys

import pytest

from taskengine.cli.fast_run import parse_run_args

EXE = [sys.executable, "-c", "from taskengine.cli import main; main()"]


@pytest.mark.parametrize(
    ("args", "root", "options"),
    [
        (["run", "c.yaml"], {}, {"chain": "c.yaml"}),
        (["run", "c.yaml", "--input", "hi"], {}, {"chain": "c.yaml", "input": "hi"}),
        (["run", "-i", "hi", "c.yaml"], {}, {"chain": "c.yaml", "input": "hi"}),
        (["run", "c.yaml", "--input=-x"], {}, {"chain": "c.yaml", "input": "-x"}),
        (["run", "c.yaml", "--input="], {}, {"chain": "c.yaml", "input": ""}),
        (["run", "c.yaml", "--input-file", "-"], {}, {"chain": "c.yaml", "input_file": "-"}),
        (
            ["--debug", "--config", "s.yaml", "run", "c.yaml", "--json", "--no-store"],
            {"debug": True, "config": "s.yaml"},
            {"chain": "c.yaml", "as_json": True, "no_store": True},
        ),
        (["--config", "run", "run", "c.yaml"], {"config": "run"}, {"chain": "c.yaml"}),
        (
            ["run", "c.yaml", "--hooks", "a.py", "--break", "t", "--hooks=b.py", "-c", "x"],
            {},
            {"chain": "c.yaml", "hooks": ["a.py", "b.py"], "break_at": ["t"], "config": "x"},
        ),
    ],
)
def test_plain_forms_are_parsed(args, root, options):
    assert parse_run_args(args) == (root, options)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run"],
        ["--help"],
        ["--version", "run", "c.yaml"],
        ["run", "--help"],
        ["run", "c.yaml", "--help"],
        ["run", "c.yaml", "--bogus"],
        ["run", "c.yaml", "d.yaml"],
        ["run", "-"],
        ["run", "c.yaml", "--"],
        ["run", "c.yaml", "--input"],
        ["run", "c.yaml", "--input", "-x"],
        ["run", "c.yaml", "-ihi"],
        ["run", "c.yaml", "--input", "a", "--input", "b"],
        ["run", "c.yaml", "--json", "--json"],
        ["run", "c.yaml", "--json=1"],
        ["run", "c.yaml", "--debug"],
        ["-c", "x", "run", "c.yaml"],
        ["resume", "x"],
        ["runs", "list"],
    ],
)
def test_anything_else_is_left_to_typer(args):
    assert parse_run_args(args) is None


@pytest.fixture
def env(tmp_path):
    (tmp_path / "none.yaml").write_text("{}\n")
    (tmp_path / "one.yaml").write_text("id: one\ntasks:\n  - id: a\n    handler: noop\n")
    return {
        **os.environ,
        "TASKENGINE_DB": f"sqlite:///{tmp_path / 'runs.db'}",
        "TASKENGINE_CONFIG": str(tmp_path / "none.yaml"),
        "HOME": str(tmp_path),
    }


def test_a_plain_run_never_imports_typer_or_rich(env, tmp_path):
    code = (
        "import sys; from taskengine.cli import main; "
        f"main(['run', {str(tmp_path / 'one.yaml')!r}, '-i', 'hi']); "
        "print(sorted(m for m in ('typer', 'click', 'rich') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hi\n[]\n"


def test_help_imports_neither_the_engine_nor_asyncio(env):
    code = (
        "import sys; from taskengine.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('asyncio', 'pydantic', 'taskengine.chain') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("[]\n") and "Commands" in out.stdout


def test_fast_and_typer_paths_give_the_same_results(env, tmp_path):
    chain = str(tmp_path / "one.yaml")
    (tmp_path / "in.txt").write_text("from a file\n")

    def run(*args, input_text=None):
        return subprocess.run(
            [*EXE, *args], env=env, capture_output=True, text=True, timeout=60, input=input_text
        )

    fast, typer = run("run", chain, "-i", "hello"), run("run", chain, "-ihello")
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, "hello\n", "")
    assert (typer.returncode, typer.stdout, typer.stderr) == (0, "hello\n", "")
    piped = run("run", chain, "--input-file", "-", "--json", input_text="piped\n")
    assert json.loads(piped.stdout)["output"] == "piped"
    assert run("run", chain, "--input-file", str(tmp_path / "in.txt")).stdout == "from a file\n"
    for args in (["run", "missing.yaml"], ["run", chain, "--input-file", "nowhere.txt"]):
        fast = run(*args)
        typer = run(*args, "--input-type=string", "--input-type", "string")  # refused: repeated
        assert fast.returncode == typer.returncode != 0
        assert fast.stderr == typer.stderr and fast.stdout == typer.stdout == ""


def test_typer_help_loads_rich_markdown_and_traceback_only_when_used():
    code = (
        "import sys\n"
        "from taskengine.cli.lean_rich import import_rich_utils\n"
        "import_rich_utils()\n"
        "import typer.rich_utils as ru\n"
        "print('rich.markdown' in sys.modules, 'rich.traceback' in sys.modules)\n"
        "md = ru.Markdown('# x')\n"
        "import rich.markdown\n"
        "print(type(md) is rich.markdown.Markdown, isinstance(md, ru.Markdown))\n"
        "print(ru.Traceback.from_exception is not None, 'rich.traceback' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "False False\nTrue True\nTrue True\n"
