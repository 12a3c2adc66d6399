"""The store on an S3-compatible server (moto's server mode, a real HTTP server on
loopback): the commit protocol without rename, inputs downloaded for local commands,
and claims that let exactly one of many workers produce an output."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from a_la_mode import AlamodeError
from alamode_airflow import gc, history
from alamode_airflow.claims import Claim, Claimant, Claims
from alamode_airflow.receipts import Receipt
from alamode_airflow.store import Committed, Found, OutputStore
from alamode_airflow.triggers import ClaimReleasedTrigger
from tests.unit.test_store import OUTPUT, attempt, record_for

CONN_ID = "alamode_test_s3"
ROOT = "s3://alamode-outputs/store"


@pytest.fixture
def store(server, monkeypatch, request) -> OutputStore:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection())
    # A root per test: the server lives for the whole module.
    return OutputStore(f"{ROOT}/{request.node.name}", conn_id=CONN_ID)


def prefix(store: OutputStore) -> str:
    return store.root.path.split("/", 1)[1]


def test_commit_writes_data_then_record_then_receipt_into_the_bucket(store, server):
    staging, _ = attempt(store, "hello")
    (staging / "data" / "sub").mkdir()
    (staging / "data" / "sub" / "more.txt").write_text("more")
    record = record_for(staging, store=store)
    assert store.lookup(OUTPUT).status is Found.MISSING
    assert store.commit(staging, record) is Committed.COMMITTED
    assert not staging.exists()
    base = f"{prefix(store)}/objects/{OUTPUT}/0"
    attempt_prefix = record.data_path.removesuffix("/data")
    assert len(attempt_prefix) == 16
    assert sorted(server.keys(base)) == sorted(
        [
            f"{base}/record.json",
            f"{base}/{Receipt.of(record, record.dumps().encode()).name}",
            f"{base}/{record.data_path}/out.txt",
            f"{base}/{record.data_path}/sub/more.txt",
        ]
    )
    found = store.lookup(OUTPUT)
    assert found.done
    assert found.record.run_id == "run-1"
    body = server.client().get_object(Bucket=server.bucket, Key=f"{base}/record.json")["Body"]
    assert json.loads(body.read())["output_id"] == OUTPUT


def test_inputs_are_downloaded_for_local_commands(store, tmp_path):
    staging, record = attempt(store, "pixels")
    store.commit(staging, record)
    local = store.fetch(store.lookup(OUTPUT).record, tmp_path / "in")
    assert (local / "out.txt").read_text() == "pixels"


def test_data_without_a_record_is_not_a_success_and_is_left_alone(store, server):
    """A worker killed after uploading data, before the record: nothing is committed,
    and the next producer writes under its own prefix, never over another attempt's."""
    base = f"{prefix(store)}/objects/{OUTPUT}/0"
    dead = f"{base}/0123456789abcdef/data/partial.bin"
    server.client().put_object(Bucket=server.bucket, Key=dead, Body=b"x")
    assert store.lookup(OUTPUT).status is Found.MISSING
    staging, record = attempt(store, "whole")
    assert store.commit(staging, record) is Committed.COMMITTED
    assert dead in server.keys(base)
    found = store.lookup(OUTPUT)
    assert found.done
    assert found.record.data_path == record.data_path


def test_a_stalled_holder_cannot_change_the_committed_bytes(store, server, tmp_path):
    """Two attempts at generation 0: the one that stalled past its lease keeps
    uploading after the other's record exists. Readers get the winner's bytes, and
    lineage --verify finds them intact."""
    stalled, stalled_record = attempt(store, "stale bytes")
    winner, record = attempt(store, "winner")
    assert store.commit(winner, record) is Committed.COMMITTED
    # The stalled attempt uploads its data anyway (its record will lose).
    assert store.commit(stalled, stalled_record) is Committed.ALREADY
    stray = f"{prefix(store)}/objects/{OUTPUT}/0/{stalled_record.data_path}/out.txt"
    server.client().put_object(Bucket=server.bucket, Key=stray, Body=b"late upload")
    local = store.fetch(store.lookup(OUTPUT).record, tmp_path / "read")
    assert (local / "out.txt").read_text() == "winner"
    assert history.lineage(store, OUTPUT, verify=True).check is history.Check.OK


def test_a_generation_is_committed_once(store):
    first, record = attempt(store, "first")
    second, other = attempt(store, "second", run_id="run-2")
    assert store.commit(first, record) is Committed.COMMITTED
    assert store.commit(second, other) is Committed.ALREADY
    assert store.lookup(OUTPUT).record.run_id == "run-1"


def test_a_rebuild_in_progress_leaves_readers_on_the_last_success(store, server):
    staging, record = attempt(store)
    store.commit(staging, record)
    base = f"{prefix(store)}/objects/{OUTPUT}/1/0123456789abcdef/data"
    server.client().put_object(Bucket=server.bucket, Key=f"{base}/out.txt", Body=b"half")
    found = store.lookup(OUTPUT)
    assert found.done
    assert found.generation == 0


def test_an_unreadable_record_is_moved_to_quarantine(store, server):
    staging, record = attempt(store)
    store.commit(staging, record)
    key = f"{prefix(store)}/objects/{OUTPUT}/0/record.json"
    server.client().put_object(Bucket=server.bucket, Key=key, Body=b"{not json")
    warnings = []
    assert store.settle(OUTPUT, lambda *args: warnings.append(args)).status is Found.MISSING
    assert len(warnings) == 1
    # The tombstone: generation 0 never counts as a success again. The record names no
    # prefix one can read, so the attempt's data stays where it is (never served).
    left = server.keys(f"{prefix(store)}/objects/{OUTPUT}")
    assert f"{prefix(store)}/objects/{OUTPUT}/0.void" in left
    assert f"{prefix(store)}/objects/{OUTPUT}/0/record.json" not in left
    kept = server.keys(f"{prefix(store)}/quarantine/")
    assert [k.rsplit("/", 1)[1] for k in kept] == ["record.json"]


def test_quarantine_moves_the_records_attempt_and_no_other(store, server):
    """Data vanished under a record: its record and its own prefix are moved aside;
    another attempt's prefix under the same generation is not touched."""
    staging, record = attempt(store)
    store.commit(staging, record)
    base = f"{prefix(store)}/objects/{OUTPUT}/0"
    other = f"{base}/0123456789abcdef/data/partial.bin"
    server.client().put_object(Bucket=server.bucket, Key=other, Body=b"x")
    server.client().delete_object(Bucket=server.bucket, Key=f"{base}/{record.data_path}/out.txt")
    assert store.settle(OUTPUT, lambda *args: None).status is Found.MISSING
    assert sorted(server.keys(f"{base}/")) == [other]
    kept = server.keys(f"{prefix(store)}/quarantine/")
    assert [k.rsplit("/", 1)[1] for k in kept] == ["record.json"]


def test_of_eight_racing_workers_exactly_one_produces(store):
    """Eight producers of one output, as eight DAG runs on different workers: one
    computes and commits, the others wait for its claim, then find its record."""
    produced, skipped = [], []

    def worker(n: int) -> None:
        claimant = Claimant(owner=f"dag/run-{n}/t/-1", attempt="1", host="h")
        with store.locked(OUTPUT, claimant=claimant):
            if store.lookup(OUTPUT).done:
                skipped.append(n)
                return
            time.sleep(0.5)  # the command
            staging, record = attempt(store, f"by {n}", run_id=f"run-{n}")
            assert store.commit(staging, record) is Committed.COMMITTED
            produced.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(produced) == 1
    assert len(skipped) == 7
    assert store.lookup(OUTPUT).record.run_id == f"run-{produced[0]}"
    assert store.generations(OUTPUT) == [0]
    claims = Claims(store.root)
    # Each worker held the output once, one after the other, and let it go.
    assert claims._numbers(OUTPUT) == list(range(8))
    assert claims.holder(OUTPUT) is None


def dead_claim(store, owner: str, renewed: float, lease_s: float = 60) -> Claim:
    """Claim 0, as another worker made it and never renewed."""
    claim = Claim(0, owner, "1", "gone-host", renewed=renewed, lease_s=lease_s)
    assert Claims(store.root)._create(OUTPUT, claim)
    return claim


def test_a_dead_workers_claim_is_taken_over_after_one_lease_unrenewed(store):
    """Dead is judged by watching: the claim goes unrenewed for its whole lease on
    the waiter's own clock, whatever time the dead worker wrote into it."""
    dead_claim(store, "dag/run-1/t/-1", renewed=time.time() - 3600, lease_s=1.5)
    waited = []
    me = Claimant(owner="dag/run-2/t/-1", attempt="1", host="h")
    began = time.monotonic()
    with Claims(store.root).held(OUTPUT, me, waited.append) as claim:
        assert claim.number == 1
    assert time.monotonic() - began >= 1.5
    assert [c.number for c in waited] == [0]


def test_a_live_claim_is_waited_for_whatever_the_holders_clock_says(store):
    """A holder whose clock is an hour behind still renews its claim: a waiter must
    not take the output over from it (double compute)."""
    holder = dead_claim(store, "dag/run-1/t/-1", renewed=time.time() - 3600, lease_s=1.0)
    claims = Claims(store.root)
    stop = threading.Event()

    def renew_with_a_slow_clock():
        skewed = holder.renewed
        while not stop.wait(0.2):
            skewed += 0.2
            claims.root.joinpath(OUTPUT, "0").write_bytes(replace(holder, renewed=skewed).dumps())

    renewer = threading.Thread(target=renew_with_a_slow_clock)
    renewer.start()
    try:
        me = Claimant(owner="dag/run-2/t/-1", attempt="1", host="h")
        waiter = Claims(store.root)
        deadline = time.monotonic() + 3  # three leases
        while time.monotonic() < deadline:
            mine, held_by = waiter.try_claim(OUTPUT, me)
            assert mine is None
            assert held_by.number == 0
            time.sleep(0.3)
    finally:
        stop.set()
        renewer.join()


def test_a_retry_takes_over_its_own_earlier_try_at_once(store):
    """The worker running try 1 was killed: try 2 of the same task instance does not
    wait for the lease to run out."""
    dead_claim(store, "dag/run-1/t/-1", renewed=time.time())
    retry = Claimant(owner="dag/run-1/t/-1", attempt="2", host="h")
    with Claims(store.root).held(OUTPUT, retry, lambda claim: None) as claim:
        assert claim.number == 1
        assert claim.attempt == "2"


def test_a_live_claim_of_another_run_is_waited_for(store):
    first = dead_claim(store, "dag/run-1/t/-1", renewed=time.time())
    waited = []
    other = Claimant(owner="dag/run-2/t/-1", attempt="1", host="h")
    claims = Claims(store.root)

    def wait(holder: Claim) -> None:
        # The holder lets go only once the other has seen its claim and waits.
        waited.append(holder)
        threading.Timer(0.5, claims._release, args=(OUTPUT, first)).start()

    with claims.held(OUTPUT, other, wait) as claim:
        assert claim.number == 1  # the next number, once the holder released
    assert [c.owner for c in waited] == ["dag/run-1/t/-1"]


def test_lineage_verifies_an_output_in_the_bucket(store, server):
    staging, record = attempt(store, "verified")
    store.commit(staging, record)
    assert [r.output_id for r in history.records(store)] == [OUTPUT]
    assert history.lineage(store, OUTPUT, verify=True).check is history.Check.OK
    key = f"{prefix(store)}/objects/{OUTPUT}/0/{record.data_path}/out.txt"
    server.client().put_object(Bucket=server.bucket, Key=key, Body=b"changed")
    node = history.lineage(store, OUTPUT, verify=True)
    assert node.check is history.Check.BAD_DATA
    assert node.problems == ("out.txt: sha256 differs",)


def test_gc_deletes_nothing_on_an_object_store_root(store, server, tmp_path):
    """gc lists what an object store could reclaim, but deletes only on local roots
    (no locks keep an output a task is reading): asked to, it touches nothing."""
    staging, record = attempt(store)
    store.commit(staging, record)
    before = server.keys(prefix(store))
    chosen = gc.plan(store, set(), timedelta(0))
    assert [c.output_id for c in chosen.reclaimable] == [record.output_id]
    with pytest.raises(AlamodeError, match="gc deletes on local storage roots only"):
        gc.collect(store, chosen)
    assert server.keys(prefix(store)) == before


def fired(trigger: ClaimReleasedTrigger, within: float) -> dict | None:
    """The trigger's event if it fires within ``within`` seconds, else None."""

    async def first():
        async for event in trigger.run():
            return event.payload

    try:
        return asyncio.run(asyncio.wait_for(first(), within))
    except TimeoutError:
        return None


def test_a_waiting_task_resumes_when_the_claim_is_released(store):
    """The triggerer's side of waiting: quiet while another attempt holds a live claim,
    fires once it is released; survives its own serialization."""
    holder = dead_claim(store, "dag/run-1/t/-1", renewed=time.time())
    classpath, kwargs = ClaimReleasedTrigger(
        store.url, store.conn_id, OUTPUT, poll_s=0.2
    ).serialize()
    assert classpath == "alamode_airflow.triggers.ClaimReleasedTrigger"
    trigger = ClaimReleasedTrigger(**kwargs)
    assert fired(trigger, within=1.5) is None
    Claims(store.root)._release(OUTPUT, holder)
    assert fired(trigger, within=5) == {"output_id": OUTPUT, "reason": "released"}


def test_a_waiting_task_resumes_when_the_output_is_committed(store):
    dead_claim(store, "dag/run-1/t/-1", renewed=time.time())
    staging, record = attempt(store)
    store.commit(staging, record)
    trigger = ClaimReleasedTrigger(store.url, store.conn_id, OUTPUT, poll_s=0.2)
    assert fired(trigger, within=5) == {"output_id": OUTPUT, "reason": "committed"}


def test_a_bad_lease_setting_is_refused_with_its_name(server, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection())
    monkeypatch.setenv("AIRFLOW__ALAMODE__CLAIM_LEASE_SECONDS", "soon")
    store = OutputStore(ROOT, conn_id=CONN_ID)
    assert store.lookup(OUTPUT).status is Found.MISSING  # readers never need the lease
    producer = Claimant(owner="dag/run-1/t/-1", attempt="1", host="h")
    with (
        pytest.raises(AlamodeError, match=r"claim_lease_seconds must be a positive number"),
        store.locked(OUTPUT, claimant=producer),
    ):
        pass


def test_a_waiting_rebuild_resumes_on_a_newer_generation_only(store):
    """A rebuild that saw generation 0 waits for the holder's generation 1, not for
    the generation 0 that was there all along."""
    staging, record = attempt(store)
    store.commit(staging, record)
    dead_claim(store, "dag/run-1/t/-1", renewed=time.time())
    trigger = ClaimReleasedTrigger(store.url, store.conn_id, OUTPUT, seen_generation=0, poll_s=0.2)
    assert fired(trigger, within=1.5) is None
    staging, record = attempt(store, "rebuilt", run_id="run-2")
    store.commit(staging, replace(record, generation=1, rebuilt=True))
    assert fired(trigger, within=5) == {"output_id": OUTPUT, "reason": "committed"}


def test_a_waiting_task_resumes_when_the_claim_goes_unrenewed_and_names_it(store):
    """The trigger watched claim 0 go unrenewed for its lease: the resumed task is
    told which claim died, so it takes over at once instead of waiting again."""
    dead_claim(store, "dag/run-1/t/-1", renewed=time.time(), lease_s=0.6)
    trigger = ClaimReleasedTrigger(store.url, store.conn_id, OUTPUT, poll_s=0.2)
    assert fired(trigger, within=5) == {"output_id": OUTPUT, "reason": "expired", "claim": 0}
    me = Claimant(owner="dag/run-2/t/-1", attempt="1", host="h")
    assert store.busy(OUTPUT, me, presumed_dead=0) is None
    began = time.monotonic()
    with store.locked(OUTPUT, claimant=me, presumed_dead=0):
        assert time.monotonic() - began < 0.5
