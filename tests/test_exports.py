"""`taskengine.__all__` is the public API: complete, importable, sorted."""

import importlib
import inspect
import subprocess
import sys

import taskengine


def test_every_name_in_all_resolves():
    for name in taskengine.__all__:
        assert getattr(taskengine, name) is not None, name


def test_all_is_sorted_and_unique():
    assert taskengine.__all__ == sorted(set(taskengine.__all__))


def test_public_errors_are_all_exported():
    errors = importlib.import_module("taskengine.errors")
    for name, obj in vars(errors).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, Exception)
            and obj.__module__ == errors.__name__
        ):
            assert name in taskengine.__all__, name


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
