"""A newcomer's first hour with the `taskengine` command (issue 16): real processes and files."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from taskengine.testing import FakeLLMServer

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("taskengine")


@pytest.fixture
def cli(tmp_path):
    env = {
        **os.environ,
        "TASKENGINE_DB": f"sqlite:///{tmp_path / 'runs.db'}",
        "TASKENGINE_CONFIG": str(tmp_path / "none.yaml"),
        "HOME": str(tmp_path),
        "TASKENGINE_SECRET_KEY_FILE": str(tmp_path / "keys" / "secret.key"),
    }
    for name in ("TASKENGINE_SECRET_KEY", "OLLAMA_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    (tmp_path / "none.yaml").write_text("{}\n")

    def run(*args, input_text=None, exe=(str(EXE),), **extra_env):
        return subprocess.run(
            [*exe, *map(str, args)],
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            input=input_text,
            timeout=60,
            cwd=tmp_path,
        )

    return run


def fake_config(path: Path, srv: FakeLLMServer) -> Path:
    path.write_text(
        "providers:\n"
        f"  - {{name: fake, type: openai_compatible, base_url: '{srv.openai_base_url}'}}\n"
        "default_provider: fake\ndefault_model: fake-model\n"
    )
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- 2: ports --------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_rejects_a_port_out_of_range(cli, port):
    out = cli("serve", "--port", port)
    assert out.returncode == 2 and "--port" in out.stderr and "Uvicorn" not in out.stderr


def test_serve_on_a_busy_port_is_one_line(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", "--port", port)
    assert out.returncode == 1
    assert out.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another server?); pick another with --port\n"
    )


def test_serve_start_up_problems_are_one_line(cli, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad_db = cli("serve", "--port", port, TASKENGINE_DB=f"sqlite:///{tmp_path}/no/such/x.db")
    assert bad_db.returncode == 1 and "Traceback" not in bad_db.stderr
    assert bad_db.stderr == (
        f"error: cannot create {tmp_path}/no/such/x.db: directory {tmp_path}/no does not exist "
        "(create it first, or fix the path in TASKENGINE_DB / db)\n"
    )
    bad_hooks = cli("serve", "--port", port, "--hooks", "nothere.py")
    assert bad_hooks.returncode == 1 and "Traceback" not in bad_hooks.stderr
    assert bad_hooks.stderr == "error: field '--hooks': hooks file not found: nothere.py\n"


# --- 3, 12: runs show ------------------------------------------------------------------------


def test_runs_show_keeps_brackets_and_says_why_values_are_empty(cli, tmp_path):
    chain = write(
        tmp_path / "fails.yaml",
        "id: fails\ntasks:\n  - id: boom\n    handler: raise_error\n"
        "    prompt_template: \"no model [provider 'ollama'] said [bold]hi[/bold]\"\n",
    )
    run = json.loads(cli("run", chain, "--json").stdout)
    shown = cli("runs", "show", run["runId"])
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # the table may wrap long cells
    assert "no model [provider 'ollama'] said [bold]hi[/bold]" in text
    assert "has debug: false" in shown.stdout and "not recorded" in shown.stdout

    debug = write(
        tmp_path / "debug.yaml",
        "id: loud\ndebug: true\ntasks:\n  - id: say\n    handler: noop\n"
        "    prompt_template: 'hello [b]x[/b]'\n",
    )
    run = json.loads(cli("run", debug, "--json").stdout)
    shown = cli("runs", "show", run["runId"])
    assert "not recorded" not in shown.stdout and "hello [b]x[/b]" in shown.stdout


# --- 5: one set of options -------------------------------------------------------------------


def test_every_command_takes_config_and_every_json_flag_has_help():
    import typer

    from taskengine.cli import app

    root = typer.main.get_command(app)

    def walk(group, prefix=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group (typer may vendor its own click)
                yield from walk(command, (*prefix, name))
            else:
                yield " ".join((*prefix, name)), command

    commands = dict(walk(root))
    for name in ("run", "resume", "serve", "validate", "runs list", "runs show", "config show"):
        assert "--config" in {o for p in commands[name].params for o in p.opts}, name
    for name, command in commands.items():
        for param in command.params:
            if "--json" in param.opts:
                assert param.help, f"`taskengine {name} --json` has no help text"


def test_run_and_resume_take_their_own_config(cli, tmp_path):
    chain = write(tmp_path / "one.yaml", "id: one\ntasks:\n  - id: say\n    handler: noop\n")
    small = write(tmp_path / "small.yaml", "limits: {max_input_bytes: 5}\n")
    assert cli("run", chain, "--input", "0123456789").returncode == 0
    for args in (("run", chain, "-i", "0123456789", "--config", small),
                 ("--config", small, "run", chain, "-i", "0123456789")):  # fmt: skip
        out = cli(*args)
        assert out.returncode == 1 and "over the limit of 5 bytes" in out.stderr, out.stderr
    missing = cli("resume", "nope", "--config", tmp_path / "absent.yaml")
    assert missing.returncode == 1 and "absent.yaml" in missing.stderr


def test_python_dash_m_is_the_same_command(cli):
    from taskengine import __version__

    out = cli("--version", exe=(sys.executable, "-m", "taskengine"))
    assert out.returncode == 0 and out.stdout == f"taskengine {__version__}\n"


def test_validate_with_hooks_finds_unknown_hooks_and_tools(cli, tmp_path):
    hooks = ROOT / "examples" / "ticket_hooks.py"
    chain = write(
        tmp_path / "hooks.yaml",
        "id: h\ntasks:\n"
        "  - id: a\n    handler: hook\n    hook: {name: tickets, tool_name: asign}\n"
        "    transition: {branches: [{operator: default, goto: b}]}\n"
        "  - id: b\n    handler: hook\n    hook: {name: tikets}\n"
        "    transition: {branches: [{operator: default, goto: c}]}\n"
        "  - id: c\n    handler: model_execution\n    execute_config: {hooks: [nope]}\n",
    )
    plain = cli("validate", chain)
    assert plain.returncode == 0, plain.stderr  # names are only known once hooks are loaded
    checked = cli("validate", chain, "--hooks", hooks)
    assert checked.returncode == 1
    assert "task 'a', hook.tool_name: hook 'tickets' has no tool 'asign'" in checked.stderr
    assert "task 'b', hook.name: unknown hook 'tikets' (did you mean 'tickets'?)" in checked.stderr
    assert "task 'c', execute_config.hooks[0]: unknown hook 'nope'" in checked.stderr
    ok = cli("validate", ROOT / "examples" / "ticket_router.yaml", "--hooks", hooks)
    assert ok.returncode == 0 and "ok (8 tasks)" in ok.stdout, ok.stderr


# --- 6, 7: runs list, store URLs -------------------------------------------------------------


def test_runs_list_rejects_an_unknown_status(cli):
    out = cli("runs", "list", "--status", "bogus")
    assert out.returncode == 2 and "unknown status 'bogus'" in out.stderr
    assert "succeeded" in out.stderr
    assert cli("runs", "list", "--status", "failed").returncode == 0


def test_cli_status_list_is_the_stores():
    from taskengine.cli import _RUN_STATUSES
    from taskengine.store.base import RUN_STATUSES

    assert set(_RUN_STATUSES) == RUN_STATUSES


def test_a_plain_path_in_taskengine_db_is_sqlite(cli, tmp_path):
    chain = ROOT / "examples" / "ticket_router.yaml"
    hooks = ROOT / "examples" / "ticket_hooks.py"
    db = tmp_path / "plain.db"
    out = cli("run", chain, "--hooks", hooks, "-i", "customer=A, category=x", TASKENGINE_DB=str(db))
    assert out.returncode == 0, out.stderr
    listed = json.loads(cli("runs", "list", "--json", TASKENGINE_DB=str(db)).stdout)
    assert len(listed) == 1 and db.exists()
    missing = cli("runs", "list", TASKENGINE_DB=f"sqlite:///{tmp_path}/no/such/x.db")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert f"directory {tmp_path}/no does not exist" in missing.stderr
    assert not (tmp_path / "no").exists()


# --- 11: secrets -----------------------------------------------------------------------------


def test_first_use_of_secrets_says_which_key_file(cli, tmp_path):
    key_file = tmp_path / "keys" / "secret.key"
    printed = cli("secrets", "keygen")
    assert printed.returncode == 0 and len(printed.stdout.strip()) == 44
    assert "not saved" in printed.stderr and "keygen --write" in printed.stderr
    assert not key_file.exists()

    first = cli("secrets", "set", "token", input_text="abc\n")
    assert first.returncode == 0, first.stderr
    assert f"created a new master key: key file {key_file}" in first.stderr
    assert f"sealed with key file {key_file}" in first.stderr

    again = cli("secrets", "set", "other", input_text="x\n")
    assert "created" not in again.stderr and f"key file {key_file}" in again.stderr
    listed = cli("secrets", "list")
    assert f"master key: key file {key_file}" in listed.stderr

    key_file.unlink()
    written = cli("secrets", "keygen", "--write")
    assert f"wrote key file {key_file}" in written.stderr
    used = cli("secrets", "set", "third", input_text="y\n")
    kid = written.stderr.split("key id ")[1].split(")")[0]
    assert f"sealed with key file {key_file} (key id {kid})" in used.stderr


# --- 12: streaming and stdin -----------------------------------------------------------------


def test_stream_puts_each_step_on_its_own_line_and_stdin_drops_the_final_newline(cli, tmp_path):
    chain = write(
        tmp_path / "two.yaml",
        "id: two\ntasks:\n"
        "  - id: first\n    handler: raw_string\n    prompt_template: 'one {{ .input }}'\n"
        "    transition: {branches: [{operator: default, goto: second}]}\n"
        "  - id: second\n    handler: raw_string\n    prompt_template: 'two'\n",
    )
    with FakeLLMServer() as srv:
        srv.add_rule("one", reply=lambda body: f"alpha<{body['messages'][-1]['content']}>")
        srv.add_rule("two", reply="beta")
        config = fake_config(tmp_path / "fake.yaml", srv)
        out = cli(
            "run", chain, "--stream", "--input-file", "-", "--config", config, input_text="x\n"
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "beta\n"
    assert out.stderr == "alpha<one x>\nbeta\n"


def test_a_run_against_ollama_does_not_load_the_openai_sdk(tmp_path):
    """Ollama's native client needs no SDK: skipping its import saves ~1 s per CLI run."""
    script = write(
        tmp_path / "cold.py",
        "import sys, taskengine\n"
        "chain = {'id': 'c', 'tasks': [{'id': 'a', 'handler': 'raw_string',\n"
        "         'execute_config': {'model': 'm', 'provider': 'ollama'}}]}\n"
        "print(taskengine.run_sync(chain, 'hi').output, 'openai' in sys.modules)\n",
    )
    with FakeLLMServer() as srv:
        srv.add_rule("hi", reply="hello")
        env = {**os.environ, "OLLAMA_HOST": srv.url, "TASKENGINE_CONFIG": str(tmp_path / "x.yaml")}
        (tmp_path / "x.yaml").write_text("{}\n")
        out = subprocess.run(
            [sys.executable, script], capture_output=True, text=True, env=env, timeout=60
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello False\n"
