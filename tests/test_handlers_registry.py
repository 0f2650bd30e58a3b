"""The public handler registry: users add handlers without subclassing, and bad registrations
fail at once with a clear message."""

import pytest

from taskengine.chain import load_chain
from taskengine.datatypes import DataType
from taskengine.engine import SimpleEnv
from taskengine.errors import ChainValidationError, UnsupportedTaskTypeError
from taskengine.executor import SimpleExec
from taskengine.handlers import (
    BUILTIN_HANDLER_NAMES,
    HandlerRegistrationError,
    HandlerRegistry,
    register_handler,
    unregister_handler,
)


def two_step_chain(handler: str):
    """A chain as data: `SimpleEnv` lints it with the handlers its executor knows."""
    return {
        "id": "shouting",
        "tasks": [
            {
                "id": "shout",
                "handler": handler,
                "transition": {
                    "branches": [
                        {"operator": "equals", "when": "loud", "goto": "done"},
                        {"operator": "default", "goto": "end"},
                    ]
                },
            },
            {
                "id": "done",
                "handler": "noop",
                "transition": {"branches": [{"operator": "default", "goto": "end"}]},
            },
        ],
    }


async def shout(ctx, task, input, input_type):
    assert ctx.run.chain_id == "shouting" and task.handler in ("noop", "test_shout", "test_late")
    return str(input).upper() + "!", DataType.STRING, "loud"


@pytest.fixture
def registered():
    """`shout` registered process-wide for one test."""
    register_handler("test_shout", shout)
    try:
        yield "test_shout"
    finally:
        unregister_handler("test_shout")


async def test_a_registered_handler_runs_in_a_chain_end_to_end(registered):
    result = await SimpleEnv().exec_env(two_step_chain(registered), "hello")
    assert result.output == "HELLO!"
    assert [unit.task_id for unit in result.state] == ["shout", "done"]
    assert registered in SimpleExec().handler_names
    # a chain loaded on its own knows the process-wide handlers too
    assert load_chain(two_step_chain(registered)).tasks[0].handler == registered


def test_load_chain_refuses_a_handler_nobody_registered():
    with pytest.raises(ChainValidationError, match="unknown handler 'test_nobody'"):
        load_chain(two_step_chain("test_nobody"))


async def test_a_handler_registered_after_the_executor_exists_is_found():
    env = SimpleEnv()
    register_handler("test_late", shout)
    try:
        result = await env.exec_env(two_step_chain("test_late"), "late")
    finally:
        unregister_handler("test_late")
    assert result.output == "LATE!"
    with pytest.raises(ChainValidationError, match="unknown handler 'test_late'"):
        await env.exec_env(two_step_chain("test_late"), "gone")  # unregistered again
    shout_task = load_chain(two_step_chain("noop")).tasks[0].model_copy(update={"handler": "x"})
    with pytest.raises(UnsupportedTaskTypeError, match="does not support handler 'x'"):
        await SimpleExec().task_exec(None, shout_task, "", DataType.STRING)


async def test_a_registry_of_ones_own_is_passed_to_simple_exec():
    registry = HandlerRegistry()

    @registry.register("test_sync_shout")
    def sync_shout(ctx, task, input, input_type):  # a plain function is fine too
        return str(input).upper(), DataType.STRING, "loud"

    assert sync_shout.__name__ == "sync_shout"  # the decorator returns the function unchanged
    executor = SimpleExec(handlers=registry)
    assert "test_sync_shout" in executor.handler_names
    assert "test_sync_shout" not in SimpleExec().handler_names  # not process-wide
    result = await SimpleEnv(executor).exec_env(two_step_chain("test_sync_shout"), "own")
    assert result.output == "OWN"


async def test_simple_exec_register_still_replaces_a_handler():
    executor = SimpleExec()
    executor.register("noop", shout)
    result = await SimpleEnv(executor).exec_env(two_step_chain("noop"), "hi")
    assert result.output == "HI!!"  # "shout" ran as the first task, then as "done"


def test_a_taken_name_is_refused_unless_replaced(registered):
    with pytest.raises(HandlerRegistrationError, match="'test_shout' is already registered"):
        register_handler(registered, shout)
    register_handler(registered, shout, replace=True)
    registry = HandlerRegistry()
    for builtin in sorted(BUILTIN_HANDLER_NAMES)[:3]:
        with pytest.raises(HandlerRegistrationError, match="is a built-in handler"):
            registry.register(builtin, shout)
    registry.register("noop", shout, replace=True)
    assert registry.names() == ["noop"]


@pytest.mark.parametrize(
    ("name", "handler", "message"),
    [
        ("", shout, "non-empty string"),
        (" padded ", shout, "non-empty string"),
        (42, shout, "non-empty string"),
        ("step:mine", shout, "reserved for step-style tasks"),
        ("not_callable", "shout", "must be callable, got str"),
        ("too_few", lambda ctx, task: None, r"must accept \(ctx, task, input, input_type\)"),
    ],
)
def test_invalid_registrations_say_what_is_wrong(name, handler, message):
    with pytest.raises(HandlerRegistrationError, match=message):
        HandlerRegistry().register(name, handler)
    with pytest.raises(HandlerRegistrationError):
        HandlerRegistry({name: handler})


def test_unregistering_an_unknown_handler_is_a_key_error():
    with pytest.raises(KeyError, match="no handler 'nobody' is registered"):
        unregister_handler("nobody")
