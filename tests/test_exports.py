"""`taskengine.__all__` is the curated public API: small, importable, sorted, typed; the names
exported before curation still resolve."""

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import taskengine


def test_every_name_in_all_resolves():
    for name in taskengine.__all__:
        assert getattr(taskengine, name) is not None, name


def test_all_is_sorted_and_unique():
    assert taskengine.__all__ == sorted(set(taskengine.__all__))


def test_every_public_error_resolves_from_the_package():
    errors = importlib.import_module("taskengine.errors")
    for name, obj in vars(errors).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, Exception)
            and obj.__module__ == errors.__name__
        ):
            assert getattr(taskengine, name) is obj, name


def test_the_curated_api_is_small_and_grouped_names_are_kept():
    assert 40 <= len(taskengine.__all__) <= 60, len(taskengine.__all__)
    assert dir(taskengine) == taskengine.__all__
    for name in ("SimpleEnv", "Engine", "SimpleExec", "Executor", "load_chain", "run"):
        assert name in taskengine.__all__, name


def test_names_exported_before_curation_still_resolve():
    for name, module in taskengine._LEGACY.items():
        assert name not in taskengine.__all__, name
        assert getattr(taskengine, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        taskengine.NoSuchThing  # noqa: B018


def test_every_curated_name_is_visible_to_type_checkers():
    """Each name is imported under `if TYPE_CHECKING:`, so it is not `Any` to mypy/pyright."""
    tree = ast.parse(Path(taskengine.__file__).read_text())
    typed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.ImportFrom):
                    typed.update(alias.asname or alias.name for alias in stmt.names)
    assert set(taskengine.__all__) - {"__version__"} <= typed, (
        set(taskengine.__all__) - typed - {"__version__"}
    )


def test_python_names_and_go_names_are_the_same_objects():
    assert taskengine.Engine is taskengine.SimpleEnv
    assert taskengine.Executor is taskengine.SimpleExec
    assert taskengine.Engine.run is taskengine.Engine.exec_env
    assert taskengine.Executor.execute is taskengine.Executor.task_exec


def test_every_error_derives_from_the_root():
    for name in taskengine.__all__:
        obj = getattr(taskengine, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, taskengine.TaskEngineError), name


def test_import_is_lazy():
    code = "import sys, taskengine; print(sorted(m for m in ('pydantic', 'jinja2', 'fastapi', 'openai') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
