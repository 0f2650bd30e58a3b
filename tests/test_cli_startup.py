"""The CLI's loading phase: pydantic's plugin search skipped only when it would find nothing,
garbage collection paused and restored, and settings defaults equal to validated ones."""

import gc
import os
import subprocess
import sys
import textwrap

import pytest

from taskengine.cli.startup import loading, may_have_pydantic_plugins, pydantic_plugins_skipped
from taskengine.config import Settings, load_settings

VARIABLE = "PYDANTIC_DISABLE_PLUGINS"
EXE = [sys.executable, "-c", "from taskengine.cli import main; main()"]


@pytest.fixture
def fresh_scan(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    may_have_pydantic_plugins.cache_clear()
    yield
    may_have_pydantic_plugins.cache_clear()


def _dist(folder, name, entry_points):
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def test_no_plugin_declared_sets_the_variable_only_inside_the_block(fresh_scan):
    if may_have_pydantic_plugins():
        pytest.skip("this environment has a pydantic plugin installed")
    with pydantic_plugins_skipped():
        assert os.environ[VARIABLE] == "1"
    assert VARIABLE not in os.environ


def test_a_declared_plugin_leaves_the_search_to_pydantic(fresh_scan, tmp_path, monkeypatch):
    _dist(tmp_path, "other", "[console_scripts]\nx = y:z\n")
    _dist(
        tmp_path, "logfire_like", "[console_scripts]\na = b:c\n\n[ pydantic ]\nlf = lf_mod:plugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert may_have_pydantic_plugins()
    with pydantic_plugins_skipped():
        assert VARIABLE not in os.environ


def test_the_scan_agrees_with_importlib_metadata(fresh_scan, tmp_path, monkeypatch):
    from importlib.metadata import entry_points

    _dist(tmp_path, "nothing_here", None)
    _dist(tmp_path, "scripts_only", "[console_scripts]\nx = y:z\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert may_have_pydantic_plugins() == bool(entry_points(group="pydantic"))


def test_a_zip_on_the_path_is_not_read_so_pydantic_searches(fresh_scan, tmp_path, monkeypatch):
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    monkeypatch.syspath_prepend(str(archive))
    assert may_have_pydantic_plugins()


def test_a_variable_the_user_set_is_kept(fresh_scan, monkeypatch):
    monkeypatch.setenv(VARIABLE, "some_plugin")
    with pydantic_plugins_skipped():
        assert os.environ[VARIABLE] == "some_plugin"
    assert os.environ[VARIABLE] == "some_plugin"


def test_loading_pauses_collection_and_restores_it(fresh_scan):
    assert gc.isenabled()
    with loading():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.unfreeze()


def test_loading_restores_collection_after_an_error(fresh_scan):
    with pytest.raises(RuntimeError), loading():
        raise RuntimeError("boom")
    assert gc.isenabled()
    assert VARIABLE not in os.environ
    gc.unfreeze()


def test_a_run_started_process_does_not_inherit_the_variable(tmp_path):
    """The variable is gone by the time the chain runs: a child started by a hook sees none."""
    hooks = tmp_path / "hooks.py"
    hooks.write_text(
        textwrap.dedent(
            """
            import os
            from taskengine import hook

            @hook("env")
            def read(name: str) -> str:
                return os.environ.get(name, "unset")
            """
        )
    )
    chain = tmp_path / "c.yaml"
    chain.write_text(
        "id: c\ntasks:\n  - id: t\n    handler: hook\n"
        "    hook: {name: env, tool_name: read, args: {name: PYDANTIC_DISABLE_PLUGINS}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    proc = subprocess.run(
        [*EXE, "run", str(chain), "--hooks", str(hooks), "--no-store"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "unset"


def test_default_settings_equal_validated_defaults():
    constructed = Settings.model_construct()
    validated = Settings.model_validate({})
    assert constructed == validated
    assert constructed.model_dump() == validated.model_dump()
    assert constructed.model_fields_set == validated.model_fields_set == set()
    assert validated.secret_values() == []  # why loading no configuration registers none


def test_loading_no_configuration_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TASKENGINE_"):
            monkeypatch.delenv(name)
    settings = load_settings(None)
    assert settings == Settings.model_validate({})
    assert settings.source_file is None
