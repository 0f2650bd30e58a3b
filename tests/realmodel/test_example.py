"""examples/local_model.yaml, run the way the README says: `taskengine run` with the settings
`scripts/local-model.sh config` prints, against the real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import LocalModel

pytestmark = pytest.mark.realmodel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "local_model.yaml"


def test_the_local_model_example_runs_end_to_end(local_model: LocalModel, tmp_path: Path) -> None:
    settings = {
        "providers": [local_model.provider_settings()],
        "default_provider": "local",
        "default_model": local_model.model,
    }
    config = tmp_path / "local-model.yaml"
    config.write_text(yaml.safe_dump(settings))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "TASKENGINE_", "OLLAMA_"))
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("taskengine")), "--config", str(config), "run",
         str(EXAMPLE), "--input", "The parcel arrived broken and nobody answers my emails.",
         "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    steps = [unit["taskID"] for unit in result["state"]]
    assert steps in (["is_complaint", "apologise"], ["is_complaint", "thank"])
    assert isinstance(result["output"], str) and result["output"].strip()
    assert result["totals"]["llm_calls"] == 2
