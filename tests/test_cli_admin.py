"""`taskengine config …` and `taskengine secrets …` driven like a user would."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from taskengine.cli.config import config_app
from taskengine.cli.secret_cmds import secrets_app
from taskengine.logs import clear_registered_secrets

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    """A private store, key file and working directory for every test."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TASKENGINE_") and not name.startswith("TASKENGINE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TASKENGINE_DB", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("TASKENGINE_SECRET_KEY_FILE", str(tmp_path / "keys" / "secret.key"))
    yield
    clear_registered_secrets()


def write_config(tmp_path, text):
    path = tmp_path / "taskengine.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_config_show_masks_secrets(tmp_path):
    write_config(
        tmp_path,
        """
        default_model: llama3
        providers:
          - {name: cloud, type: openai, api_key: sk-live-0123456789, headers: {X-Org: org-secret}}
        server: {api_token: "${secret:server_token}"}
    """,
    )
    result = runner.invoke(config_app, ["show"])
    assert result.exit_code == 0, result.output
    assert "sk-live-0123456789" not in result.output and "org-secret" not in result.output
    assert "api_key: '***'" in result.output and "default_model: llama3" in result.output
    as_json = runner.invoke(config_app, ["show", "--json", "--set", "server.port=9999"])
    data = json.loads(as_json.stdout)
    assert data["server"] == {**data["server"], "port": 9999, "api_token": "***"}
    assert data["providers"][0]["headers"] == {"X-Org": "***"}


def test_config_show_honours_env_and_explicit_file(tmp_path, monkeypatch):
    other = tmp_path / "other.yaml"
    other.write_text("default_model: from-other\n")
    monkeypatch.setenv("TASKENGINE_SERVER__PORT", "7000")
    data = json.loads(runner.invoke(config_app, ["show", "--json", "--config", str(other)]).stdout)
    assert (data["default_model"], data["server"]["port"]) == ("from-other", 7000)


def test_config_check_exit_codes(tmp_path, monkeypatch):
    write_config(tmp_path, "default_model: ok\n")
    ok = runner.invoke(config_app, ["check"])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: taskengine.yaml")
    path = write_config(
        tmp_path,
        """
        servr: {port: 1}
        providers:
          - {name: a, api_key: "${MISSING_KEY}"}
    """,
    )
    monkeypatch.setenv("TASKENGINE_RETRY__BASE", "never")
    bad = runner.invoke(config_app, ["check"])
    assert bad.exit_code == 1
    lines = bad.stdout.strip().splitlines()
    assert sorted(lines) == sorted(
        [
            f"error: {path.name}: providers[0].api_key: environment variable MISSING_KEY is not set "
            "(referenced as ${MISSING_KEY})",
            f"error: {path.name}: servr: unknown key 'servr' (did you mean 'server'?)",
            "error: environment variable TASKENGINE_RETRY__BASE: retry.base: invalid duration 'never' "
            "(use e.g. '30s', '2m', '1h30m', '500ms') (got 'never')",
        ]
    )


def test_config_check_resolves_secrets(tmp_path):
    write_config(tmp_path, "server: {api_token: '${secret:server_token}'}\n")
    missing = runner.invoke(config_app, ["check"])
    assert missing.exit_code == 1
    assert "server.api_token: secret 'server_token' is not set" in missing.stdout
    assert runner.invoke(secrets_app, ["set", "server_token"], input="tok-value-1\n").exit_code == 0
    assert runner.invoke(config_app, ["check"]).exit_code == 0


def test_secrets_set_get_list_delete(tmp_path):
    result = runner.invoke(secrets_app, ["set", "openai"], input="sk-from-stdin-123\n")
    assert result.exit_code == 0, result.output
    assert "sk-from-stdin-123" not in result.output
    key_file = tmp_path / "keys" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    listed = runner.invoke(secrets_app, ["list"])
    assert listed.exit_code == 0 and listed.stdout.startswith("openai\t")
    assert "sk-from-stdin" not in listed.output
    rows = json.loads(runner.invoke(secrets_app, ["list", "--json"]).stdout)
    assert rows == [{"name": "openai", "keyId": rows[0]["keyId"], "currentKey": True}]
    hidden = runner.invoke(secrets_app, ["get", "openai"])
    assert hidden.exit_code == 0 and hidden.stdout == "" and "--reveal" in hidden.stderr
    assert runner.invoke(secrets_app, ["get", "openai", "--reveal"]).stdout == "sk-from-stdin-123\n"
    assert runner.invoke(secrets_app, ["delete", "openai"]).exit_code == 0
    gone = runner.invoke(secrets_app, ["delete", "openai"])
    assert gone.exit_code == 1 and "does not exist" in gone.stderr
    missing = runner.invoke(secrets_app, ["get", "openai", "--reveal"])
    assert missing.exit_code == 1 and missing.stderr.startswith("error: secret 'openai' is not set")


def test_secret_values_never_come_from_argv():
    result = runner.invoke(secrets_app, ["set", "openai", "sk-on-the-command-line"])
    assert result.exit_code == 2  # no such argument
    empty = runner.invoke(secrets_app, ["set", "openai"], input="")
    assert empty.exit_code == 1 and "empty value" in empty.stderr


def test_values_from_a_terminal_use_a_hidden_confirmed_prompt(monkeypatch):
    import taskengine.cli.secret_cmds as cli_admin

    class Terminal:
        def isatty(self):
            return True

    asked = {}

    def fake_prompt(text, **kwargs):
        asked.update(kwargs, text=text)
        return "typed-secret"

    monkeypatch.setattr(cli_admin.sys, "stdin", Terminal())
    monkeypatch.setattr(cli_admin.typer, "prompt", fake_prompt)
    assert cli_admin._read_value("Value for x") == "typed-secret"
    assert asked == {"text": "Value for x", "hide_input": True, "confirmation_prompt": True}


def test_secrets_rotate_with_key_file(tmp_path):
    for name, value in (("a", "value-a"), ("b", "value-b")):
        assert runner.invoke(secrets_app, ["set", name], input=value).exit_code == 0
    before = (tmp_path / "keys" / "secret.key").read_text()
    rotated = runner.invoke(secrets_app, ["rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 2 secrets" in rotated.stderr and "key file" in rotated.stderr
    assert rotated.stdout == ""  # the key went into the file, not the terminal
    assert (tmp_path / "keys" / "secret.key").read_text() != before
    assert runner.invoke(secrets_app, ["get", "b", "--reveal"]).stdout == "value-b\n"


def test_secrets_rotate_with_env_key_prints_the_new_key(monkeypatch):
    old = runner.invoke(secrets_app, ["keygen"]).stdout.strip()
    monkeypatch.setenv("TASKENGINE_SECRET_KEY", old)
    assert runner.invoke(secrets_app, ["set", "a"], input="value-a").exit_code == 0
    rotated = runner.invoke(secrets_app, ["rotate"])
    assert rotated.exit_code == 0 and "TASKENGINE_SECRET_KEY" in rotated.stderr
    new = rotated.stdout.strip()
    assert len(new) == 44 and new != old
    wrong = runner.invoke(
        secrets_app, ["get", "a", "--reveal"]
    )  # the variable still holds the old key
    assert wrong.exit_code == 1 and "was encrypted with key" in wrong.stderr
    monkeypatch.setenv("TASKENGINE_SECRET_KEY", new)
    assert runner.invoke(secrets_app, ["get", "a", "--reveal"]).stdout == "value-a\n"


def test_keygen_write_and_refuse_overwrite(tmp_path):
    path = tmp_path / "k" / "master.key"
    first = runner.invoke(secrets_app, ["keygen", "--write", "--key-file", str(path)])
    assert first.exit_code == 0 and first.stdout == "" and "key id" in first.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = runner.invoke(secrets_app, ["keygen", "--write", "--key-file", str(path)])
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_group_readable_key_file_is_refused(tmp_path):
    assert runner.invoke(secrets_app, ["set", "a"], input="value-a").exit_code == 0
    os.chmod(tmp_path / "keys" / "secret.key", 0o644)
    result = runner.invoke(secrets_app, ["get", "a", "--reveal"])
    assert result.exit_code == 1 and "chmod 600" in result.stderr and result.stdout == ""


def test_mounted_in_the_real_command(tmp_path):
    """The installed `taskengine` entry point, as a separate process, with a value piped in."""
    env = {**os.environ}
    cli = [sys.executable, "-c", "from taskengine.cli import main; main()"]
    stored = subprocess.run(
        [*cli, "secrets", "set", "piped"],
        input="piped-value",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stored.returncode == 0, stored.stderr
    shown = subprocess.run(
        [*cli, "secrets", "get", "piped", "--reveal"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout == "piped-value\n"
    (tmp_path / "alt.yaml").write_text("default_model: via-root-option\n")
    show = subprocess.run(
        [*cli, "--config", str(tmp_path / "alt.yaml"), "config", "show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["default_model"] == "via-root-option"
