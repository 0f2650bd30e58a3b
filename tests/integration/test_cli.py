"""The `taskengine` command end to end, as a user runs it: real processes, real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ticket_router.yaml"
HOOKS = ROOT / "examples" / "ticket_hooks.py"
EXE = Path(sys.executable).with_name("taskengine")


@pytest.fixture
def cli(tmp_path):
    env = {
        **os.environ,
        "TASKENGINE_DB": f"sqlite:///{tmp_path / 'runs.db'}",
        "TASKENGINE_CONFIG": str(tmp_path / "none.yaml"),
        "HOME": str(tmp_path),
    }
    env.pop("TASKENGINE_SECRET_KEY", None)
    (tmp_path / "none.yaml").write_text("{}\n")

    def run(*args, input_text=None):
        return subprocess.run(
            [str(EXE), *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            input=input_text,
            timeout=60,
            cwd=tmp_path,
        )

    return run


def test_example_routes_by_amount_and_category(cli):
    big = cli(
        "run",
        EXAMPLE,
        "--hooks",
        HOOKS,
        "--json",
        "--input",
        "customer=ACME, category=billing, amount=900, priority=high",
    )
    assert big.returncode == 0, big.stderr
    data = json.loads(big.stdout)
    assert [s["taskID"] for s in data["state"]] == [
        "parse",
        "category",
        "amount",
        "assign_finance_lead",
    ]
    assert data["output"].endswith("ACME -> finance-lead (SLA 8h)")
    assert data["status"] == "succeeded" and data["runId"]
    assert set(data["state"][0]) >= {
        "taskID",
        "taskHandler",
        "inputType",
        "outputType",
        "transition",
        "duration",
        "error",
        "input",
        "output",
        "inputVar",
    }
    assert (
        "escalated a 900 billing dispute" in big.stderr
    )  # `print` goes to stderr, stdout stays clean

    small = cli(
        "run",
        EXAMPLE,
        "--hooks",
        HOOKS,
        "--json",
        "--input",
        "customer=Bo, category=billing, amount=20",
    )
    assert [s["taskID"] for s in json.loads(small.stdout)["state"]][-1] == "assign_billing"
    tech = cli("run", EXAMPLE, "--hooks", HOOKS, "--input", "customer=Cy, category=technical")
    assert tech.stdout.strip().endswith("Cy -> engineering (SLA 24h)")


def test_unreadable_ticket_takes_the_failure_edge(cli):
    out = cli("run", EXAMPLE, "--hooks", HOOKS, "--json", "--input", "hello there")
    data = json.loads(out.stdout)
    assert [s["taskID"] for s in data["state"]] == ["parse", "unreadable"]
    assert data["state"][0]["error"]["error"]
    assert data["output"].startswith("rejected:")


def test_runs_list_and_show(cli):
    run = json.loads(
        cli("run", EXAMPLE, "--hooks", HOOKS, "--json", "--input", "customer=A, category=x").stdout
    )
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert listed[0]["runId"] == run["runId"]
    assert set(listed[0]) >= {"runId", "chainId", "status", "createdAt", "updatedAt"}
    shown = json.loads(cli("runs", "show", run["runId"], "--json").stdout)
    assert shown["status"] == "succeeded" and shown["output"] == run["output"]
    assert [s["taskID"] for s in shown["state"]] == [s["taskID"] for s in run["state"]]
    missing = cli("runs", "show", "nope")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "nope" in missing.stderr


def test_break_then_resume_with_a_changed_variable(cli):
    paused = json.loads(
        cli(
            "run",
            EXAMPLE,
            "--hooks",
            HOOKS,
            "--json",
            "--break",
            "amount",
            "--input",
            "customer=ACME, category=billing, amount=900",
        ).stdout
    )
    assert paused["status"] == "paused" and paused["pausedAt"] == "amount"
    shown = json.loads(cli("runs", "show", paused["runId"], "--json").stdout)
    assert shown["status"] == "paused" and shown["nextTask"] == "amount"
    assert (
        shown["variables"]["parse"]["amount"] == 900 and shown["variableTypes"]["parse"] == "json"
    )
    resumed = cli(
        "resume",
        paused["runId"],
        "--hooks",
        HOOKS,
        "--json",
        "--set",
        'parse={"customer": "ACME", "category": "billing", "amount": "5"}',
    )
    data = json.loads(resumed.stdout)
    assert data["status"] == "succeeded"
    assert data["output"].endswith("ACME -> billing (SLA 24h)")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "missing.yaml"), "chain file not found"),
        (("run", EXAMPLE, "--input", "category=tech"), "unknown hook 'tickets'"),
        (
            ("run", EXAMPLE, "--hooks", HOOKS, "--input", "x", "--input-type", "int"),
            "cannot convert 'x' to int",
        ),
        (("run", EXAMPLE, "--hooks", "nowhere.py"), "hooks file not found"),
    ],
)
def test_bad_input_is_one_line_without_traceback(cli, args, needle):
    out = cli(*args)
    assert out.returncode != 0
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0


def test_debug_flag_shows_traceback(cli):
    out = cli("--debug", "run", "missing.yaml")
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_runaway_loop_and_malformed_chain(cli, tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.write_text(
        "id: loop\nmax_steps: 30\ntasks:\n  - id: a\n    handler: noop\n    transition:\n"
        "      branches: [{operator: default, goto: a}]\n"
    )
    out = cli("run", loop)
    assert out.returncode == 1 and "max_steps=30" in out.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: b\ntasks:\n  - id: a\n    handler: noop\n   bad_indent: 1\n")
    out = cli("run", broken)
    assert out.returncode == 1 and "invalid YAML at line" in out.stderr


def test_validate_reports_all_problems_with_paths(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\ntasks:\n  - id: a\n    handler: condition_key\n    prompt_template: x\n"
        "    transition:\n      branches: [{operator: in_range, when: '9', goto: nowhere}]\n"
    )
    out = cli("validate", bad, EXAMPLE)
    assert out.returncode == 1
    assert "task 'a', valid_conditions: condition_key tasks need valid_conditions" in out.stderr
    assert (
        "transition.branches[0].when" in out.stderr and "transition.branches[0].goto" in out.stderr
    )
    assert "ticket_router.yaml: ok (8 tasks)" in out.stdout
    assert cli("validate", EXAMPLE).returncode == 0


def test_schema_and_graph(cli):
    schema = json.loads(cli("schema").stdout)
    assert "TaskDefinition" in schema["$defs"]
    graph = cli("graph", EXAMPLE).stdout
    assert graph.startswith("flowchart TD")
    assert 't_amount -->|">  500"|' not in graph
    assert 't_amount -->|"> 500"| t_assign_finance_lead' in graph
    assert 't_parse -.->|"on_failure"| t_unreadable' in graph


def test_corrupt_database_is_a_clear_error(cli, tmp_path):
    (tmp_path / "runs.db").write_bytes(b"this is not a database" * 100)
    out = cli("runs", "list")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "runs.db" in out.stderr


def test_llm_chain_streams_and_reports_tokens_and_cost(cli, tmp_path):
    from taskengine.testing import FakeLLMServer

    with FakeLLMServer() as srv:
        srv.add_rule("haiku", reply="old pond frog jumps in")
        (tmp_path / "none.yaml").write_text(
            "providers:\n"
            f"  - {{name: fake, type: openai_compatible, base_url: '{srv.openai_base_url}'}}\n"
            "default_provider: fake\ndefault_model: fake-model\n"
            "prices:\n  fake-model: {input_per_1m: 1000, output_per_1m: 2000}\n"
        )
        chain = tmp_path / "poem.yaml"
        chain.write_text(
            "id: poem\ntasks:\n  - id: write\n    handler: raw_string\n"
            "    prompt_template: 'a haiku about {{ .input }}'\n"
        )
        out = cli("run", chain, "--input", "ponds", "--json", "--stream")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["output"] == "old pond frog jumps in"
    assert "old pond" in out.stderr  # streamed token by token
    totals = data["totals"]
    assert totals["llm_calls"] == 1 and totals["total_tokens"] > 0
    assert totals["cost"] == pytest.approx(
        (totals["input_tokens"] * 1000 + totals["output_tokens"] * 2000) / 1e6
    )
    # the one step carries what it used: the run's whole usage and cost
    assert data["state"][0]["meta"] == {
        "provider": "fake", "model": "fake-model", "input_tokens": totals["input_tokens"],
        "output_tokens": totals["output_tokens"], "cost": pytest.approx(totals["cost"]),
    }  # fmt: skip
    shown = json.loads(cli("runs", "show", data["runId"], "--json").stdout)
    assert shown["totals"]["cost"] == pytest.approx(totals["cost"])


def test_serve_starts_and_answers_health(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "TASKENGINE_DB": f"sqlite:///{tmp_path / 'runs.db'}",
        "TASKENGINE_KV": f"sqlite:///{tmp_path / 'activity.db'}",
        "TASKENGINE_CONFIG": str(tmp_path / "none.yaml"),
        "TASKENGINE_API_TOKEN": "s3cret",
    }
    (tmp_path / "none.yaml").write_text("{}\n")
    proc = subprocess.Popen(
        [str(EXE), "serve", "--port", str(port), "--hooks", str(HOOKS)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        body = json.dumps(
            {
                "input": "customer=Q, category=billing, amount=10",
                "inputType": "string",
                "chain": json.loads(json.dumps(__import__("yaml").safe_load(EXAMPLE.read_text()))),
            }
        )
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/tasks",
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer s3cret"},
        )
        with urllib.request.urlopen(req, timeout=20) as resp:
            data = json.load(resp)
        assert data["output"].endswith("Q -> billing (SLA 24h)")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run",), "Missing argument"),
        (("run", "x.yaml", "--bogus"), "No such option"),
        (("nosuchcmd",), "No such command"),
        (("runs", "list", "--limit", "0"), "--limit"),
        (("resume", "X", "--set", "novalue"), "expected VAR=VALUE"),
        (("run", "c.yaml", "-i", "a", "--input-file", "c.yaml"), "either --input or --input-file"),
    ],
)
def test_usage_errors_exit_2_with_a_usage_message(cli, args, needle):
    out = cli(*args)
    assert out.returncode == 2, out.stderr
    assert (
        needle in out.stderr
        and "internal error" not in out.stderr
        and "Traceback" not in out.stderr
    )


def test_version(cli):
    from taskengine import __version__

    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"taskengine {__version__}"


def test_failed_run_with_json_still_prints_its_record(cli, tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.write_text(
        "id: loop\nmax_steps: 5\ntasks:\n  - id: a\n    handler: noop\n    transition:\n"
        "      branches: [{operator: default, goto: a}]\n"
    )
    out = cli("run", loop, "--json")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["status"] == "failed" and len(data["state"]) == 5
    assert data["error"]["code"] == "max_steps"
    assert f"taskengine runs show {data['runId']}" in out.stderr
    assert out.stderr.strip().count("\n") == 0
    shown = json.loads(cli("runs", "show", data["runId"], "--json").stdout)
    assert shown["status"] == "failed" and len(shown["state"]) == 5


def test_chain_name_without_extension_that_does_not_exist(cli):
    out = cli("run", "mychain")
    assert out.returncode == 1 and "chain file not found: mychain" in out.stderr


def test_files_that_are_not_utf8_are_one_line_errors(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"id: c\ntasks: []\n\xff\xfe")
    out = cli("validate", bad, EXAMPLE)
    assert (
        out.returncode == 1 and "not UTF-8" in out.stderr and "ticket_router.yaml: ok" in out.stdout
    )
    text = tmp_path / "in.txt"
    text.write_bytes(b"\xff\xfe")
    out = cli("run", EXAMPLE, "--hooks", HOOKS, "--input-file", text)
    assert out.returncode == 2 and "not UTF-8" in out.stderr and "Traceback" not in out.stderr
