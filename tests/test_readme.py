"""The README's two set-up commands are exactly what CI runs, so a green CI proves the README."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)][:2]


def test_readme_opens_with_two_commands_that_ci_runs_verbatim():
    commands = setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"{command!r} is not a line of .ci/run"


def test_example_named_in_the_readme_exists():
    for path in re.findall(r"examples/[\w./-]+", setup_commands()[0]):
        assert (ROOT / path).exists(), path
