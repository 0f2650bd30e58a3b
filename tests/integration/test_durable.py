"""Durable runs against real processes: SIGKILL at random points, resume, and leases."""

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskengine.engine import SimpleEnv
from taskengine.errors import RunLeaseError
from taskengine.store import open_store

sys.path.insert(0, str(Path(__file__).parent))
from durable_child import CHAIN, STEPS, make_hooks

CHILD = Path(__file__).with_name("durable_child.py")


def wait_for(predicate, timeout=20.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError("condition not met before the deadline")


async def resume_when_free(env, run_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await env.resume(run_id)
        except RunLeaseError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sigkill_at_random_points_then_resume_gives_the_same_output(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    rng = random.Random(1234)
    killed_mid_run = 0
    for attempt in range(6):
        run_id = f"kill-{attempt}"
        marker = tmp_path / f"{run_id}.started"
        child = subprocess.Popen(
            [sys.executable, str(CHILD), db, run_id, str(marker)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(marker.exists)
        time.sleep(
            rng.uniform(0.0, 0.25)
        )  # deliberate: a random kill point, not a wait for a condition
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()

        store = await open_store(db)
        try:
            before = await store.get_run(run_id)
            env = SimpleEnv(hooks=make_hooks(), store=store, lease_ttl=0.3)
            result = await resume_when_free(env, run_id)
            assert result.status == "succeeded"
            assert result.output == STEPS
            steps = await store.get_steps(run_id)
            succeeded = [s for s in steps if s.status == "succeeded"]
            # Each count 1..STEPS was recorded exactly once as succeeded, in order.
            outputs = [s.vars_delta["bump"][1] for s in succeeded if "bump" in s.vars_delta]
            assert outputs == list(range(1, STEPS + 1))
            assert len({s.seq for s in steps}) == len(steps)
            # the run row (overlaid with any one-statement checkpoint rows) counts every step once
            after = await store.get_run(run_id)
            assert after.step_count == len([s for s in steps if s.step is not None])
            if before.status != "succeeded":
                killed_mid_run += 1
        finally:
            await store.aclose()
    assert killed_mid_run >= 3  # most kills landed while the run was still going


async def test_second_resumer_is_told_the_run_is_taken(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store_a = await open_store(db)
    store_b = await open_store(db)
    try:
        first = SimpleEnv(hooks=make_hooks(), store=store_a, lease_ttl=5)
        paused = await first.exec_env(CHAIN, 0, "int", breakpoints=["bump"])
        assert paused.status == "paused"
        a = SimpleEnv(hooks=make_hooks(), store=store_a, lease_ttl=5)
        b = SimpleEnv(hooks=make_hooks(), store=store_b, lease_ttl=5)
        job = asyncio.ensure_future(a.resume(paused.run_id, breakpoints=()))
        await asyncio.sleep(0.05)  # let `a` take the lease and start its first slow step
        with pytest.raises(RunLeaseError, match="already being resumed"):
            await b.resume(paused.run_id)
        result = await job
        assert result.output == STEPS
    finally:
        await store_a.aclose()
        await store_b.aclose()


async def test_failed_run_keeps_partial_results_and_resumes(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = await open_store(db)
    flaky = {"fail": True}
    from taskengine.hooks.composite import HookRegistry
    from taskengine.hooks.local import LocalHookRegistry

    local = LocalHookRegistry()

    @local.hook("svc")
    def call(input: str) -> str:
        if flaky["fail"]:
            raise RuntimeError("service down")
        return input + "!"

    from taskengine.chain import load_chain

    chain = load_chain(
        {
            "id": "partial",
            "tasks": [
                {
                    "id": "a",
                    "handler": "noop",
                    "prompt_template": "A",
                    "transition": {"branches": [{"operator": "default", "goto": "b"}]},
                },
                {"id": "b", "handler": "hook", "hook": {"name": "svc"}},
            ],
        }
    )
    try:
        env = SimpleEnv(hooks=HookRegistry(local), store=store)
        with pytest.raises(Exception, match="service down"):
            await env.exec_env(chain, "x", run_id="p1")
        record = await store.get_run("p1")
        assert record.status == "failed" and "service down" in record.error["message"]
        state = await store.load_state("p1")
        assert state.variables["a"] == "A"
        assert [h["taskID"] for h in state.history] == ["a", "b"]
        flaky["fail"] = False
        result = await env.resume("p1")
        assert result.output == "A!"
        assert [u.task_id for u in result.state] == ["a", "b", "b"]
    finally:
        await store.aclose()


async def test_a_dead_local_owner_does_not_block_resume_until_its_lease_expires(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    marker = tmp_path / "m"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), db, "dead-owner", str(marker), "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(marker.exists)
    time.sleep(0.1)  # deliberate: let a step or two happen before the kill
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    store = await open_store(db)
    try:
        assert (await store.get_run("dead-owner")).status == "running"  # its 60 s lease is live
        started = time.monotonic()
        result = await SimpleEnv(hooks=make_hooks(), store=store).resume("dead-owner")
        assert result.output == STEPS
        assert time.monotonic() - started < 10  # did not wait for the lease to lapse
    finally:
        await store.aclose()


async def test_two_resumes_in_one_process_do_not_both_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = await open_store(db)
    calls = []
    from taskengine.hooks.composite import HookRegistry
    from taskengine.hooks.local import LocalHookRegistry

    local = LocalHookRegistry()

    @local.hook("slow")
    async def work(input: str) -> str:
        calls.append(input)
        await asyncio.sleep(0.3)
        return "done"

    from taskengine.chain import load_chain

    chain = load_chain(
        {"id": "one", "tasks": [{"id": "w", "handler": "hook", "hook": {"name": "slow"}}]}
    )
    env = SimpleEnv(hooks=HookRegistry(local), store=store)
    try:
        paused = await env.exec_env(chain, "x", breakpoints=["w"])
        results = await asyncio.gather(
            env.resume(paused.run_id, breakpoints=()),
            env.resume(paused.run_id, breakpoints=()),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["RunLeaseError", "RunResult"]
        assert calls == ["x"]  # the task ran once
        assert (await store.get_run(paused.run_id)).status == "succeeded"
    finally:
        await store.aclose()


async def test_resume_edge_cases(tmp_path):
    from taskengine.errors import ConflictError, DefinitionError

    store = await open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        env = SimpleEnv(hooks=make_hooks(), store=store)
        done = await env.exec_env(CHAIN, STEPS - 1, "int")
        again = await env.resume(done.run_id)
        assert again.output == done.output == STEPS
        with pytest.raises(ConflictError, match="already succeeded"):
            await env.resume(done.run_id, set_vars={"input": 0})
        with pytest.raises(DefinitionError, match="breakpoint on unknown task 'nope'"):
            await env.exec_env(CHAIN, 0, "int", breakpoints=["nope"])
    finally:
        await store.aclose()


async def test_idempotency_keys_differ_per_visit_and_hold_across_retries():
    from taskengine.chain import load_chain
    from taskengine.hooks.base import HookContext
    from taskengine.hooks.composite import HookRegistry
    from taskengine.hooks.local import LocalHookRegistry

    local = LocalHookRegistry()
    seen: list[tuple[str, int]] = []

    @local.hook("count")
    def bump(input: int, context: HookContext) -> int:
        seen.append((context.idempotency_key, context.attempt))
        if len(seen) == 2:  # the second visit fails once, then succeeds on its retry
            raise RuntimeError("flaky")
        return int(input) + 1

    chain = load_chain(
        {
            "id": "keys",
            "tasks": [
                {
                    "id": "bump",
                    "handler": "hook",
                    "hook": {"name": "count"},
                    "output_template": "{{ output }}",  # a hook branches on its rendered template
                    "retry_on_failure": 1,
                    "transition": {
                        "branches": [
                            {"operator": "lt", "when": "3", "goto": "bump"},
                            {"operator": "default", "goto": "end"},
                        ]
                    },
                }
            ],
        }
    )
    env = SimpleEnv(hooks=HookRegistry(local), retry_base=0.001)
    result = await env.exec_env(chain, 0, "int", run_id="r")
    assert result.output == "3"
    assert seen == [("r:bump:1", 1), ("r:bump:2", 1), ("r:bump:2", 2), ("r:bump:3", 1)]


async def test_two_processes_resuming_one_run_one_wins(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = await open_store(db)
    try:
        paused = await SimpleEnv(hooks=make_hooks(), store=store).exec_env(
            CHAIN, 0, "int", breakpoints=["bump"]
        )
        marker = tmp_path / "resuming"
        child = subprocess.Popen(
            [sys.executable, str(CHILD), "resume", db, paused.run_id, str(marker)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(marker.exists)  # the other process holds the lease and is running steps
        with pytest.raises(RunLeaseError, match="already being resumed"):
            await SimpleEnv(hooks=make_hooks(), store=store).resume(paused.run_id)
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        assert out.strip() == str(STEPS)
        record = await store.get_run(paused.run_id)
        assert record.status == "succeeded" and record.output == STEPS
    finally:
        await store.aclose()


# --- regressions found in review ------------------------------------------------------------


async def test_an_earlier_retry_does_not_leak_into_a_later_visit_after_resume(tmp_path):
    from taskengine.datatypes import DataType
    from taskengine.errors import TaskExecutionError
    from taskengine.executor import SimpleExec

    calls = {"a": 0, "b": 0}

    async def flaky(ctx, task, value, vtype):
        calls["a"] += 1
        if calls["a"] in (1, 3):  # the first attempt of each visit fails
            raise TaskExecutionError("transient", task_id=task.id)
        return "ok", DataType.STRING, "ok"

    async def loop_once(ctx, task, value, vtype):
        calls["b"] += 1
        answer = "again" if calls["b"] == 1 else "done"
        return answer, DataType.STRING, answer

    chain = {"id": "c", "retry_policy": {"base": "1ms", "max": "1ms"}, "tasks": [
        {"id": "A", "handler": "flaky", "retry_on_failure": 1,
         "transition": {"branches": [{"operator": "default", "goto": "B"}]}},
        {"id": "B", "handler": "loop", "transition": {"branches": [
            {"operator": "equals", "when": "again", "goto": "A"}, {"operator": "default", "goto": "end"}]}},
    ]}  # fmt: skip
    store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        env = SimpleEnv(SimpleExec(handlers={"flaky": flaky, "loop": loop_once}), store=store)
        first = await env.exec_env(chain, "x", breakpoints=["A"])
        second = await env.resume(first.run_id)  # pauses again before the second visit of A
        assert second.status == "paused"
        third = await env.resume(second.run_id, breakpoints=())
        assert third.status == "succeeded"  # the second visit still had its retry
    finally:
        await store.aclose()


async def test_resume_restores_composed_vars_set_vars_and_max_steps(tmp_path):
    from taskengine.chain import load_chain
    from taskengine.errors import MaxStepsExceededError

    store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        env = SimpleEnv(hooks=make_hooks(), store=store, max_steps_default=5)
        composing = load_chain({"id": "f", "tasks": [
            {"id": "x", "handler": "parse_key_value", "compose": {"with_var": "input"},
             "transition": {"branches": [{"operator": "default", "goto": "y"}]}},
            {"id": "y", "handler": "noop", "prompt_template": "{{ .x_composed.b }}/{{ .x.a }}"},
        ]})  # fmt: skip
        paused = await env.exec_env(composing, {"a": 1, "b": "hello"}, "json", breakpoints=["y"])
        assert (await env.resume(paused.run_id, breakpoints=())).output == "hello/1"

        loop = load_chain({"id": "l", "tasks": [
            {"id": "a", "handler": "noop", "transition": {"branches": [{"operator": "default", "goto": "a"}]}}]})  # fmt: skip
        paused = await env.exec_env(loop, "x", breakpoints=["a"])
        with pytest.raises(
            MaxStepsExceededError, match="max_steps=5"
        ):  # the engine default survives
            await env.resume(paused.run_id, breakpoints=())

        echo = load_chain({"id": "e", "tasks": [{"id": "a", "handler": "noop"}]})
        paused = await env.exec_env(echo, "orig", breakpoints=["a"])
        edited = await env.resume(paused.run_id, set_vars={"previous_output": "EDITED"})
        assert edited.output == "EDITED"
    finally:
        await store.aclose()


async def test_a_raising_subscriber_fails_the_run_cleanly(tmp_path):
    from taskengine.chain import load_chain
    from taskengine.engine.events import RunObserver
    from taskengine.errors import TaskExecutionError

    class Broken(RunObserver):
        async def on_step_end(self, *, run, step):
            raise ConnectionResetError("client went away")

    store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        env = SimpleEnv(store=store, observers=[Broken()])
        chain = load_chain({"id": "c", "tasks": [{"id": "a", "handler": "noop"}]})
        with pytest.raises(TaskExecutionError, match="ConnectionResetError") as info:
            await env.exec_env(chain, "x")
        record = await store.get_run(info.value.run_id)
        assert record.status == "failed" and record.lease_owner is None
    finally:
        await store.aclose()


async def test_definition_objects_are_linted_too():
    from taskengine.chain import TaskChainDefinition
    from taskengine.errors import ChainValidationError

    bad = TaskChainDefinition.model_validate({"id": "c", "tasks": [
        {"id": "a", "handler": "noop", "transition": {"branches": [{"operator": "default", "goto": "missing"}]}}]})  # fmt: skip
    with pytest.raises(ChainValidationError, match="unknown task 'missing'"):
        await SimpleEnv().exec_env(bad, "x")
