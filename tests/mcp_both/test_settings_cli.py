"""`mcp_servers:` in the settings file, and `taskengine tools list` over every tool source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from taskengine.config import load_settings
from taskengine.errors import ConfigError

from .conftest import DEMO_SERVER

TASKENGINE = [sys.executable, "-c", "from taskengine.cli import main; main()"]
TOKEN = "mcp-header-token-7f3a9c"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "taskengine.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_mcp_servers_load_with_secret_headers_masked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "mcp_servers": [
                {"name": "files", "command": ["mcp-files", "--root", "/srv"], "cwd": "/srv",
                 "env": {"FILES_TOKEN": "${secret:files_token}"}, "timeout": "45s"},
                {"name": "crm", "url": "https://crm.example/mcp",
                 "headers": {"Authorization": "Bearer ${secret:crm_token}"}},
            ]
        },
    )  # fmt: skip
    settings = load_settings(
        path, environ={}, secrets={"crm_token": TOKEN, "files_token": "files-secret-123"}
    )
    files, crm = settings.mcp_servers
    assert (files.transport, files.command, files.timeout) == (
        "stdio",
        ["mcp-files", "--root", "/srv"],
        45.0,
    )
    assert crm.transport == "http" and crm.headers["Authorization"] == f"Bearer {TOKEN}"
    shown = json.dumps(settings.masked())
    assert TOKEN not in shown and "files-secret-123" not in shown
    assert TOKEN in crm.secret_values()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "x"}, "set exactly one of 'command'"),
        ({"name": "x", "command": ["a"], "url": "http://h/mcp"}, "set exactly one of 'command'"),
        ({"name": "x", "command": []}, "non-empty list"),
        ({"name": "x", "url": "ftp://h/mcp"}, "http:// or https://"),
        ({"name": "x", "url": "http://h/mcp", "env": {"A": "b"}}, "'env' and 'cwd' apply"),
        ({"name": "x.y", "command": ["a"]}, "name"),
    ],
)
def test_bad_mcp_server_entries_name_the_key_path(
    tmp_path: Path, entry: dict, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, {"mcp_servers": [entry]}), environ={})
    assert "mcp_servers" in str(err.value) and problem in str(err.value)


def test_an_mcp_server_cannot_take_a_remote_hook_name(tmp_path: Path) -> None:
    data = {
        "remote_hooks": [{"name": "crm", "url": "https://crm.example"}],
        "mcp_servers": [{"name": "crm", "url": "https://crm.example/mcp"}],
    }
    with pytest.raises(
        ConfigError,
        match=r"mcp_servers\[0\]\.name: duplicate hook name 'crm' \(also remote_hooks\[0\]\)",
    ):
        load_settings(write(tmp_path, data), environ={})


async def test_secret_env_values_never_reach_the_chain(tmp_path: Path) -> None:
    from taskengine.datatypes import DataType
    from taskengine.runtime import open_runtime

    path = write(
        tmp_path,
        {
            "mcp_servers": [
                {"name": "demo", "command": [sys.executable, DEMO_SERVER],
                 "env": {"DEMO_NOTE": "${secret:note}", "DEMO_PLAIN": "visible-value",
                         "DEMO_API_KEY": "literal-key-value"}},
            ]
        },
    )  # fmt: skip
    settings = load_settings(path, environ={}, secrets={"note": "hidden-note-value"})
    chain = {
        "id": "env",
        "debug": True,  # record each step's output in the state
        "tasks": [
            {"id": name.lower(), "handler": "hook",
             "hook": {"name": "demo", "tool_name": "getenv", "args": {"name": name}},
             "transition": {"branches": [{"operator": "default", "goto": goto}]}}
            for name, goto in (("DEMO_NOTE", "demo_plain"), ("DEMO_PLAIN", "demo_api_key"),
                               ("DEMO_API_KEY", "end"))
        ],
    }  # fmt: skip
    async with await open_runtime(settings, use_store=False) as runtime:
        result = await runtime.env.exec_env(chain, "", DataType.STRING)
    assert result.status == "succeeded", result.error
    # a ${secret:} value and a credential-named variable are masked; plain settings are not
    assert [u.output for u in result.state] == ["***", "visible-value", "***"]
    assert [u.transition for u in result.state] == ["ok", "ok", "ok"]
    shown = json.dumps(settings.masked())
    assert "hidden-note-value" not in shown and "visible-value" in shown


def test_tools_list_shows_local_remote_and_mcp_tools(tmp_path: Path) -> None:
    hooks = tmp_path / "my_hooks.py"
    hooks.write_text(
        "from taskengine import hook\n\n"
        "@hook('weather')\n"
        "def forecast(city: str) -> str:\n"
        "    '''Forecast for a city.'''\n"
        "    return city\n",
        encoding="utf-8",
    )
    config = write(
        tmp_path,
        {
            "mcp_servers": [
                {"name": "demo", "command": [sys.executable, DEMO_SERVER],
                 "env": {"DEMO_TOKEN": "!"}},
                {"name": "gone", "command": ["/nonexistent/mcp-server"]},
            ],
            "remote_hooks": [{"name": "crm", "url": "http://127.0.0.1:9/", "timeout": 2}],
        },
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKENGINE_")}
    base = [*TASKENGINE, "--config", str(config), "tools", "list", "--hooks", str(hooks)]
    listed = subprocess.run(
        [*base, "--json"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    data = json.loads(listed.stdout)
    sources = {row["name"]: row["source"] for row in data["tools"]}
    assert sources["weather.forecast"] == "local"
    assert sources["echo.echo"] == "local"
    assert sources["demo.add"] == "mcp" and sources["demo.whoami"] == "mcp"
    add = next(row for row in data["tools"] if row["name"] == "demo.add")
    assert add["description"] == "Add two integers."
    assert add["parameters"]["required"] == ["a", "b"]
    errors = {e["hook"]: e["error"] for e in data["errors"]}
    assert "cannot start '/nonexistent/mcp-server'" in errors["gone"]
    assert "crm" in errors  # the remote hook nobody serves is reported, not fatal

    only_gone = write(tmp_path, {"mcp_servers": [{"name": "gone", "command": ["/nonexistent/x"]}]})
    table = subprocess.run(
        [*TASKENGINE, "--config", str(only_gone), "tools", "list", "--hooks", str(hooks)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    line = next(x for x in table.stdout.splitlines() if x.startswith("weather.forecast "))
    assert line.split() == ["weather.forecast", "local", "Forecast", "for", "a", "city."]
    assert "warning: hook 'gone': MCP server 'gone': cannot start '/nonexistent/x'" in table.stderr
