"""One conformance suite, two backends: a SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from taskengine.errors import (
    ConflictError,
    DataConversionError,
    NotFoundError,
    RunLeaseError,
    RunNotFoundError,
    StoreError,
)
from taskengine.store import SCHEMA_VERSION, SET_TASK_ID, RunRecord, RunStore, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """A URL for an empty database: a fresh file, or a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/runs.db"
    dsn = request.getfixturevalue("pg_dsn")
    schema = request.getfixturevalue("pg_schema")
    return f"{dsn}?schema={schema}"


@pytest.fixture
async def make_store(store_url):
    """Opens stores on the test's database (several = several "processes"); closes them all."""
    opened: list[RunStore] = []

    async def make() -> RunStore:
        store = await open_store(store_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.aclose()


@pytest.fixture
async def store(make_store) -> RunStore:
    return await make_store()


def new_run(run_id: str = "run-1", **over) -> RunRecord:
    fields = {
        "run_id": run_id,
        "chain_id": "triage",
        "chain": {"id": "triage", "tasks": [{"id": "a", "handler": "noop"}], "zeta": 1, "alpha": 2},
        "input": "ticket: printer on fire",
        "input_type": "string",
        "status": "running",
        "next_task": "a",
        "request_id": "req-1",
        "meta": {"breakpoints": ["b"]},
    }
    fields.update(over)
    return RunRecord(**fields)


def unit(task_id: str, output: str = "") -> dict:
    """A CapturedStateUnit dict as the engine records it."""
    return {
        "taskID": task_id,
        "taskHandler": "noop",
        "inputType": "string",
        "outputType": "string",
        "transition": "",
        "duration": 0.1,
        "error": {"error": None},
        "input": "",
        "output": output,
        "inputVar": "input",
    }


async def eventually(check, timeout: float = 5.0):
    """Poll `check()` (async; returns a truthy value) until it does or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.02)


# --- runs --------------------------------------------------------------------------------


async def test_is_a_run_store(store):
    assert isinstance(store, RunStore)


async def test_run_round_trips_every_field(store):
    created = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    record = new_run(created_at=created, input={"b": 1, "a": [1, "x"]}, input_type="json")
    await store.create_run(record)
    got = await store.get_run("run-1")
    assert got.run_id == "run-1" and got.chain_id == "triage"
    assert got.status == "running" and got.next_task == "a" and got.step_count == 0
    assert got.created_at == created and got.created_at.tzinfo is not None
    assert got.input == {"b": 1, "a": [1, "x"]} and got.input_type == "json"
    assert got.request_id == "req-1" and got.meta == {"breakpoints": ["b"]}
    assert got.output is None and got.error is None and got.totals == {}
    # Stored JSON gives back the same text: key order survives on both backends.
    assert list(got.chain) == ["id", "tasks", "zeta", "alpha"]
    assert got.to_dict()["runId"] == "run-1" and got.to_dict()["createdAt"].endswith("Z")


async def test_duplicate_run_id_is_a_conflict(store):
    await store.create_run(new_run())
    with pytest.raises(ConflictError, match="run-1 already exists"):
        await store.create_run(new_run())


async def test_unknown_run_is_not_found(store):
    with pytest.raises(RunNotFoundError) as info:
        await store.get_run("nope")
    assert info.value.run_id == "nope" and info.value.code == "not_found"
    with pytest.raises(RunNotFoundError):
        await store.get_steps("nope")
    with pytest.raises(RunNotFoundError):
        await store.load_state("nope")
    with pytest.raises(RunNotFoundError):
        await store.checkpoint("nope", seq=1, step=unit("a"), next_task=None, status="running")


async def test_checkpoints_record_steps_and_move_the_run(store):
    await store.create_run(new_run())
    await store.checkpoint(
        "run-1",
        seq=1,
        step=unit("a", "A"),
        vars_delta={"a": ["string", "A"]},
        next_task="b",
        status="running",
        totals={"tokens": 12},
    )
    await store.checkpoint(
        "run-1",
        seq=2,
        step=unit("b", "oops"),
        step_status="failed",
        vars_delta={},
        next_task="b",
        status="running",
        retry_state={"task": "b", "attempt": 2},
    )
    run = await store.get_run("run-1")
    assert (run.next_task, run.step_count, run.status) == ("b", 2, "running")
    assert run.totals == {"tokens": 12} and run.retry_state == {"task": "b", "attempt": 2}
    assert run.updated_at >= run.created_at
    steps = await store.get_steps("run-1")
    assert [(s.seq, s.task_id, s.status) for s in steps] == [
        (1, "a", "succeeded"),
        (2, "b", "failed"),
    ]
    assert steps[0].step == unit("a", "A") and steps[0].vars_delta == {"a": ["string", "A"]}
    assert steps[1].vars_delta == {} and steps[1].created_at.tzinfo is not None


async def test_checkpoint_without_a_step_only_moves_the_run(store):
    await store.create_run(new_run())
    await store.checkpoint(
        "run-1", seq=0, step=None, step_status=None, vars_delta={}, next_task="b", status="paused"
    )
    run = await store.get_run("run-1")
    assert (run.status, run.next_task, run.step_count) == ("paused", "b", 0)
    assert await store.get_steps("run-1") == []


async def test_a_repeated_seq_is_refused_and_changes_nothing(store):
    await store.create_run(new_run())
    await store.checkpoint("run-1", seq=1, step=unit("a"), next_task="b", status="running")
    with pytest.raises(StoreError, match="step 1 is already checkpointed"):
        await store.checkpoint("run-1", seq=1, step=unit("b"), next_task="c", status="running")
    run = await store.get_run("run-1")
    assert (run.next_task, run.step_count) == ("b", 1)  # the run row rolled back with the step
    assert [s.task_id for s in await store.get_steps("run-1")] == ["a"]


async def test_a_value_that_is_not_json_writes_nothing(store):
    await store.create_run(new_run())
    with pytest.raises(StoreError, match="not JSON-serializable"):
        await store.checkpoint(
            "run-1",
            seq=1,
            step=unit("a"),
            vars_delta={"a": ["x", object()]},
            next_task="b",
            status="running",
        )
    assert (await store.get_run("run-1")).next_task == "a"
    with pytest.raises(StoreError, match="unknown run status"):
        await store.checkpoint("run-1", seq=1, step=unit("a"), next_task="b", status="sleeping")


async def test_finish_records_the_outcome_and_keeps_partial_results(store):
    await store.create_run(new_run(lease_owner="worker-1"), lease_ttl_s=30)
    await store.checkpoint(
        "run-1",
        seq=1,
        step=unit("a", "A"),
        vars_delta={"a": ["string", "A"]},
        next_task="b",
        status="running",
    )
    error = {"message": "boom", "type": "RaisedError", "code": "raised"}
    await store.finish_run("run-1", status="failed", error=error, totals={"tokens": 3, "cost": 0.5})
    run = await store.get_run("run-1")
    assert run.status == "failed" and run.error == error and run.output is None
    assert run.totals == {"tokens": 3, "cost": 0.5}
    assert run.lease_owner is None  # finishing releases the lease
    assert [s.step["output"] for s in await store.get_steps("run-1")] == ["A"]

    await store.create_run(new_run("run-2"))
    await store.finish_run("run-2", status="succeeded", output={"route": "it"}, output_type="json")
    done = await store.get_run("run-2")
    assert (done.status, done.output, done.output_type) == ("succeeded", {"route": "it"}, "json")
    with pytest.raises(RunNotFoundError):
        await store.finish_run("nope", status="succeeded")


async def test_list_runs_pages_newest_first_with_filters(store):
    base = datetime(2025, 5, 1, tzinfo=UTC)
    # Two runs share a timestamp: the cursor must still neither skip nor repeat one.
    stamps = [0, 1, 2, 2, 3, 4, 5]
    for i, minute in enumerate(stamps):
        await store.create_run(
            new_run(
                f"run-{i}",
                created_at=base + timedelta(minutes=minute),
                chain_id="odd" if i % 2 else "even",
            )
        )
    await store.finish_run("run-3", status="succeeded", output="x", output_type="string")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_runs(limit=3, cursor=cursor)
        seen += [r.run_id for r in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == ["run-6", "run-5", "run-4", "run-3", "run-2", "run-1", "run-0"]
    odd = await store.list_runs(chain_id="odd")
    assert [r.run_id for r in odd.items] == ["run-5", "run-3", "run-1"] and odd.next_cursor is None
    done = await store.list_runs(status="succeeded")
    assert [r.run_id for r in done.items] == ["run-3"]
    both = await store.list_runs(status="running", chain_id="even", limit=1)
    assert [r.run_id for r in both.items] == ["run-6"] and both.next_cursor
    with pytest.raises(DataConversionError):
        await store.list_runs(cursor="not-a-cursor")


async def test_load_state_folds_deltas_in_order(store):
    await store.create_run(new_run())
    await store.checkpoint(
        "run-1",
        seq=1,
        step=unit("a", "A"),
        vars_delta={"a": ["string", "A"], "n": ["int", 1]},
        next_task="b",
        status="running",
    )
    await store.checkpoint(
        "run-1",
        seq=2,
        step=unit("b", "B"),
        vars_delta={"n": ["int", 2], "b": ["json", {"k": [1]}]},
        next_task="c",
        status="running",
        retry_state={"task": "c", "attempt": 1},
    )
    state = await store.load_state("run-1")
    assert state.variables == {
        "input": "ticket: printer on fire",
        "a": "A",
        "n": 2,
        "b": {"k": [1]},
    }
    assert state.var_types == {"input": "string", "a": "string", "n": "int", "b": "json"}
    assert (state.next_task, state.seq, state.status) == ("c", 2, "running")
    assert state.retry_state == {"task": "c", "attempt": 1}
    assert [h["taskID"] for h in state.history] == ["a", "b"]
    assert state.run.run_id == "run-1"


async def test_set_variables_is_seen_by_resume(store):
    await store.create_run(new_run())
    await store.checkpoint(
        "run-1",
        seq=1,
        step=unit("a", "A"),
        vars_delta={"a": ["string", "A"]},
        next_task="b",
        status="running",
    )
    await store.checkpoint(
        "run-1", seq=1, step=None, step_status=None, next_task="b", status="paused"
    )
    seq = await store.set_variables("run-1", {"a": ("string", "edited"), "extra": ("int", 7)})
    assert seq == 2
    state = await store.load_state("run-1")
    assert state.variables["a"] == "edited" and state.variables["extra"] == 7
    assert state.var_types["extra"] == "int"
    assert state.seq == 2 and [h["taskID"] for h in state.history] == ["a"]  # edits are not steps
    steps = await store.get_steps("run-1")
    assert steps[-1].task_id == SET_TASK_ID and steps[-1].step is None
    assert (await store.get_run("run-1")).step_count == 1
    # The engine continues after the edit row.
    await store.checkpoint(
        "run-1", seq=state.seq + 1, step=unit("b"), next_task=None, status="running"
    )
    with pytest.raises(StoreError, match="type_name, value"):
        await store.set_variables("run-1", {"a": "no type"})
    with pytest.raises(RunNotFoundError):
        await store.set_variables("nope", {"a": ("string", "x")})


async def test_append_meta_keeps_the_newest_items_for_the_lease_holder(make_store):
    one, two = await make_store(), await make_store()  # two "processes"
    await one.create_run(new_run(lease_owner="me"), lease_ttl_s=30)
    for n in range(4):
        await one.append_meta("run-1", "spans", {"n": n}, keep=3, owner="me")
    got = await two.get_run("run-1")
    assert got.meta == {"breakpoints": ["b"], "spans": [{"n": 1}, {"n": 2}, {"n": 3}]}
    with pytest.raises(RunLeaseError):
        await two.append_meta("run-1", "spans", {"n": 9}, keep=3, owner="other")
    with pytest.raises(RunNotFoundError):
        await two.append_meta("nope", "spans", {"n": 9}, keep=3)
    with pytest.raises(StoreError, match="not JSON-serializable"):
        await one.append_meta("run-1", "spans", {"n": object()}, keep=3, owner="me")
    assert (await two.get_run("run-1")).meta["spans"] == [{"n": 1}, {"n": 2}, {"n": 3}]
    # Checkpoints go on as before, and the run released by its owner takes any writer.
    await one.checkpoint(
        "run-1", seq=1, step=unit("a"), next_task=None, status="running", owner="me"
    )
    await one.release_lease("run-1", "me")
    await two.append_meta("run-1", "spans", {"n": 4}, keep=3, owner=None)
    got = await one.get_run("run-1")
    assert got.meta["spans"] == [{"n": 2}, {"n": 3}, {"n": 4}] and got.step_count == 1


# --- leases ------------------------------------------------------------------------------


async def test_two_owners_one_lease(store):
    await store.create_run(new_run())
    expires = await store.acquire_lease("run-1", "proc-A", ttl_s=30)
    assert expires > datetime.now(UTC) + timedelta(seconds=20)
    with pytest.raises(RunLeaseError, match="run run-1 is already being resumed by proc-A") as info:
        await store.acquire_lease("run-1", "proc-B", ttl_s=30)
    assert info.value.code == "conflict" and info.value.run_id == "run-1"
    await store.acquire_lease("run-1", "proc-A", ttl_s=30)  # the holder may re-take it
    await store.renew_lease("run-1", "proc-A", ttl_s=60)
    with pytest.raises(RunLeaseError):
        await store.renew_lease("run-1", "proc-B", ttl_s=60)
    # Edits and checkpoints fenced by the lease are refused to anyone else.
    with pytest.raises(RunLeaseError):
        await store.set_variables("run-1", {"a": ("string", "x")}, owner="proc-B")
    with pytest.raises(RunLeaseError):  # nor may an edit by no owner take proc-A's next seq
        await store.set_variables("run-1", {"a": ("string", "x")})
    with pytest.raises(RunLeaseError):
        await store.checkpoint(
            "run-1", seq=1, step=unit("a"), next_task="b", status="running", owner="proc-B"
        )
    await store.checkpoint(
        "run-1", seq=1, step=unit("a"), next_task="b", status="running", owner="proc-A"
    )
    assert not await store.release_lease("run-1", "proc-B")
    assert await store.release_lease("run-1", "proc-A")
    await store.acquire_lease("run-1", "proc-B", ttl_s=30)
    assert (await store.get_run("run-1")).lease_owner == "proc-B"
    with pytest.raises(RunNotFoundError):
        await store.acquire_lease("nope", "proc-A", ttl_s=30)


async def test_an_expired_lease_reads_interrupted_and_lets_a_new_owner_in(store):
    await store.create_run(new_run(lease_owner="dead-proc"), lease_ttl_s=0.2)
    assert (await store.get_run("run-1")).status == "running"

    async def interrupted():
        return (await store.get_run("run-1")).status == "interrupted"

    await eventually(interrupted)
    assert [r.run_id for r in (await store.list_runs(status="interrupted")).items] == ["run-1"]
    assert (await store.list_runs(status="running")).items == []

    async def take():
        try:
            return await store.acquire_lease("run-1", "new-proc", ttl_s=30)
        except RunLeaseError:
            return None

    await eventually(take)
    run = await store.get_run("run-1")
    assert run.lease_owner == "new-proc" and run.status == "running"
    # The dead owner, should it wake up, is fenced off.
    with pytest.raises(RunLeaseError, match="new-proc"):
        await store.checkpoint(
            "run-1", seq=1, step=unit("a"), next_task=None, status="running", owner="dead-proc"
        )


async def test_checkpoints_extend_the_holders_lease(store):
    await store.create_run(new_run(lease_owner="me"), lease_ttl_s=3600)
    first = (await store.get_run("run-1")).lease_expires_at
    await store.checkpoint("run-1", seq=1, step=unit("a"), next_task="b", status="running")
    assert (await store.get_run("run-1")).lease_expires_at >= first


async def test_mark_interrupted_stores_the_status(store):
    await store.create_run(new_run("quiet"))  # running, no lease, gone quiet
    await store.create_run(new_run("done"))
    await store.finish_run("done", status="succeeded", output="x", output_type="string")
    await store.create_run(new_run("live", lease_owner="alive"), lease_ttl_s=3600)
    assert await store.mark_interrupted(older_than_s=3600) == []
    assert await store.mark_interrupted(older_than_s=0) == ["quiet"]
    assert (await store.get_run("quiet")).status == "interrupted"
    assert (await store.get_run("done")).status == "succeeded"
    assert (await store.get_run("live")).status == "running"


# --- two stores on one database ----------------------------------------------------------


async def test_two_store_instances_share_runs_and_contend_for_leases(make_store):
    first, second = await make_store(), await make_store()
    await first.create_run(new_run())
    await first.checkpoint(
        "run-1",
        seq=1,
        step=unit("a", "A"),
        vars_delta={"a": ["string", "A"]},
        next_task="b",
        status="running",
    )
    state = await second.load_state("run-1")
    assert state.variables["a"] == "A" and state.next_task == "b"
    results = await asyncio.gather(
        first.acquire_lease("run-1", "proc-1", ttl_s=30),
        second.acquire_lease("run-1", "proc-2", ttl_s=30),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, datetime)]
    losers = [r for r in results if isinstance(r, RunLeaseError)]
    assert len(winners) == 1 and len(losers) == 1, results
    holder = (await second.get_run("run-1")).lease_owner
    assert "already being resumed by " + holder in str(losers[0])
    await second.put_chain("c1", {"id": "c1"})
    assert (await first.get_chain("c1")).definition == {"id": "c1"}


# --- chains ------------------------------------------------------------------------------


async def test_chain_registry_crud(store):
    created = await store.put_chain("router", {"id": "router", "tasks": []}, create_only=True)
    assert created.chain_id == "router" and created.created_at == created.updated_at
    with pytest.raises(ConflictError, match="router"):
        await store.put_chain("router", {"id": "router"}, create_only=True)
    updated = await store.put_chain("router", {"id": "router", "tasks": [1]}, must_exist=True)
    assert (
        updated.definition == {"id": "router", "tasks": [1]}
        and updated.created_at == created.created_at
    )
    with pytest.raises(NotFoundError):
        await store.put_chain("ghost", {"id": "ghost"}, must_exist=True)
    await store.put_chain("upsert", {"id": "upsert"})
    assert (await store.get_chain("upsert")).definition == {"id": "upsert"}
    for name in ("c-3", "c-1", "c-2"):
        await store.put_chain(name, {"id": name})
    page1 = await store.list_chains(limit=2)
    page2 = await store.list_chains(limit=2, cursor=page1.next_cursor)
    page3 = await store.list_chains(limit=2, cursor=page2.next_cursor)
    ids = [c.chain_id for c in page1.items + page2.items + page3.items]
    assert ids == ["c-1", "c-2", "c-3", "router", "upsert"] and page3.next_cursor is None
    await store.delete_chain("router")
    with pytest.raises(NotFoundError) as info:
        await store.get_chain("router")
    assert info.value.code == "not_found"
    with pytest.raises(NotFoundError):
        await store.delete_chain("router")


# --- secrets -----------------------------------------------------------------------------


async def test_secret_blobs(store):
    assert await store.get_secret("missing") is None
    await store.put_secret("openai", b"\x00sealed\xff", "k1")
    await store.put_secret("github", b"gh", "k1")
    assert await store.get_secret("openai") == (b"\x00sealed\xff", "k1")
    await store.put_secret("openai", b"resealed", "k1")
    assert await store.get_secret("openai") == (b"resealed", "k1")
    assert await store.list_secret_names() == ["github", "openai"]
    assert await store.delete_secret("github") is True
    assert await store.delete_secret("github") is False
    await store.replace_all_secrets({"openai": (b"v2-a", "k2"), "redis": (b"v2-b", "k2")})
    assert await store.list_secret_names() == ["openai", "redis"]
    assert await store.get_secret("redis") == (b"v2-b", "k2")
    await store.replace_all_secrets({})
    assert await store.list_secret_names() == []


# --- remote hooks ------------------------------------------------------------------------


async def test_remote_hook_registry_crud(store):
    record = {
        "name": "weather",
        "endpoint_url": "http://127.0.0.1:9/api",
        "headers": {"Authorization": "Bearer s3cret"},
    }
    saved = await store.put_remote_hook("h1", record, create_only=True)
    assert (saved.hook_id, saved.name) == ("h1", "weather") and saved.record == record
    assert (await store.get_remote_hook("h1")).record["headers"] == {
        "Authorization": "Bearer s3cret"
    }
    assert (await store.get_remote_hook_by_name("weather")).hook_id == "h1"
    with pytest.raises(ConflictError, match="h1"):
        await store.put_remote_hook("h1", record, create_only=True)
    with pytest.raises(ConflictError, match="weather"):
        await store.put_remote_hook("h2", {**record, "timeout_ms": 5})
    renamed = await store.put_remote_hook("h1", {**record, "name": "forecast"})
    assert renamed.name == "forecast" and renamed.created_at == saved.created_at
    with pytest.raises(NotFoundError):
        await store.get_remote_hook_by_name("weather")
    await store.put_remote_hook("h2", {"name": "alpha"})
    await store.put_remote_hook("h3", {"name": "zulu"})
    first = await store.list_remote_hooks(limit=2)
    rest = await store.list_remote_hooks(limit=2, cursor=first.next_cursor)
    assert [h.name for h in first.items + rest.items] == ["alpha", "forecast", "zulu"]
    assert rest.next_cursor is None
    with pytest.raises(StoreError, match="name"):
        await store.put_remote_hook("h4", {"endpoint_url": "x"})
    await store.delete_remote_hook("h1")
    with pytest.raises(NotFoundError):
        await store.get_remote_hook("h1")
    with pytest.raises(NotFoundError):
        await store.delete_remote_hook("h1")


# --- migrations --------------------------------------------------------------------------


async def test_reopening_is_idempotent_and_keeps_data(store_url):
    async with await open_store(store_url) as store:
        await store.create_run(new_run())
        await store.put_chain("c", {"id": "c"})
    for _ in range(2):
        async with await open_store(store_url) as store:
            assert (await store.get_run("run-1")).chain_id == "triage"
            assert (await store.get_chain("c")).definition == {"id": "c"}
    assert SCHEMA_VERSION >= 1


async def test_a_newer_schema_version_is_refused(store_url):
    store = await open_store(store_url)
    await store.aclose()
    await _set_version(store_url, SCHEMA_VERSION + 1)
    with pytest.raises(
        StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this taskengine knows"
    ):
        await open_store(store_url)


async def _set_version(url: str, version: int) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite://") :])
        with conn:
            conn.execute("UPDATE te_schema_version SET version = ?", (version,))
        conn.close()
        return
    import psycopg

    dsn, schema = url.split("?schema=")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f'UPDATE "{schema}".te_schema_version SET version = %s', (version,))
