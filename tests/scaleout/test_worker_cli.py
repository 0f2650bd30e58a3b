"""`taskengine worker` and `submit`: clear refusals, --wait, and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal

from .conftest import STEPS
from .helpers import client, wait_for_runs_held_by, wait_statuses
from .test_batch import write_chain


def test_worker_and_submit_refuse_a_store_that_cannot_hold_a_queue(cluster, tmp_path):
    chain = write_chain(tmp_path)
    cluster.env["TASKENGINE_DB"] = f"sqlite:///{tmp_path / 'runs.db'}"
    for args in (("worker",), ("submit", chain, "--input", "x"), ("batch", chain, "--queue",
                                                                   "--inputs", chain)):  # fmt: skip
        out = cluster.cli(*args)
        assert out.returncode == 1, args
        assert out.stderr.startswith("error: the run queue needs a PostgreSQL run store: set "
                                     "TASKENGINE_DB=postgresql://"), out.stderr  # fmt: skip
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_submit_refuses_an_invalid_chain_and_input_before_queueing(cluster, tmp_path):
    chain = write_chain(tmp_path)
    out = cluster.cli("submit", chain, "--input", "abc", "--input-type", "int")
    assert out.returncode == 1 and "cannot convert 'abc' to int" in out.stderr
    out = cluster.cli("submit", chain, "--input", "x", "--break", "nope")
    assert out.returncode == 1 and "breakpoint on unknown task 'nope'" in out.stderr


def test_submit_prints_the_run_id_and_wait_prints_the_output(cluster, tmp_path):
    chain = write_chain(tmp_path)
    queued = cluster.cli("submit", chain, "--input", "hello", "--json")
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["runId"]
    assert json.loads(queued.stdout)["status"] == "queued"
    shown = json.loads(cluster.cli("runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "queued"

    cluster.start_worker("--concurrency", "2")
    plain = cluster.cli("submit", chain, "--input", "hello", "--wait")
    assert plain.returncode == 0, plain.stderr
    view = json.loads(cluster.cli("runs", "show", run_id, "--json").stdout)
    assert view["status"] == "succeeded"
    assert plain.stdout.strip() == view["output"]  # same input, same output


def test_a_paused_queued_run_resumes_from_the_cli(cluster, tmp_path):
    chain = write_chain(tmp_path)
    cluster.start_worker("--concurrency", "2")
    out = cluster.cli("submit", chain, "--input", "hitl", "--break", "t3", "--wait", "--json")
    view = json.loads(out.stdout)
    assert view["status"] == "paused" and view["nextTask"] == "t3"
    resumed = cluster.cli("resume", view["runId"], "--set", "t2=edited by a person", "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["status"] == "succeeded"
    assert [s["taskID"] for s in final["state"]] == [f"t{i}" for i in range(1, STEPS + 1)]


async def test_sigterm_finishes_or_hands_back_the_runs_in_flight(cluster, tmp_path):
    chain = write_chain(tmp_path)
    cluster.env["TASKENGINE_QUEUE__SHUTDOWN_TIMEOUT"] = "0"  # hand back at once
    first = cluster.start_worker("--concurrency", "8")
    async with client(cluster) as (runtime, queue):
        from .conftest import CHAIN
        from .helpers import submit_many

        run_ids = list(await submit_many(runtime, queue, CHAIN, [f"s{i}" for i in range(24)]))
        held = await wait_for_runs_held_by(runtime.store, run_ids, first.pid)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0
        in_flight = [r for r in held if (await runtime.store.get_run(r)).status != "succeeded"]
        assert in_flight, "SIGTERM should have caught runs in flight"
        cluster.start_worker("--concurrency", "8")
        counts = await wait_statuses(
            runtime.store, run_ids, lambda c: c["succeeded"] == len(run_ids), 60, "all runs"
        )
        assert counts == {"succeeded": len(run_ids)}
        for run_id in run_ids:
            steps = [s for s in await runtime.store.get_steps(run_id) if s.step is not None]
            assert [s.task_id for s in steps] == [f"t{i}" for i in range(1, STEPS + 1)]
    assert "Traceback" not in cluster.log_of(0)
    assert chain.exists()
