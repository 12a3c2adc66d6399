"""What the engine's walks of an object store cost, in requests, against moto's S3
server on loopback (each request counted as botocore sends it): the plan's pass over
many cached outputs, one task's check, and an executed task's claim. Every real
request costs a round trip (20-50 ms on S3), so these counts are the plan's speed."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from airflow.sdk.exceptions import TaskDeferred

from a_la_mode import Dag, load
from alamode_airflow import store_object
from alamode_airflow.claims import Claim, Claims
from alamode_airflow.currency import assess
from alamode_airflow.manifests import manifest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import Found, Lookup, OutputStore, look_up_all
from alamode_airflow.triggers import ClaimReleasedTrigger
from tests.unit.test_operators import SCHEDULED, operator, run


@pytest.fixture
def store(s3_store) -> OutputStore:
    return s3_store


@pytest.fixture
def sent(s3_sent) -> list[tuple[str, str]]:
    return s3_sent


def preimage(n: int) -> bytes:
    return f"d7:command{len(str(n)) + 5}:echo {n}e".encode()


def commit_chain(store: OutputStore, n: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``n`` tasks t0 -> t1 -> ... committed once each, every record naming the
    generation of its input: (task -> output ID, task -> inputs), as the plan has them."""
    outputs: dict[str, str] = {}
    inputs: dict[str, list[str]] = {}
    for i in range(n):
        task, output_id = f"t{i}", hashlib.sha256(preimage(i)).hexdigest()
        reads = {f"t{i - 1}": outputs[f"t{i - 1}"]} if i else {}
        staging = store.stage(output_id)
        (staging / "data" / "out.txt").write_text(task)
        record = SuccessRecord(
            output_id=output_id,
            dag_id="d",
            task=task,
            run_id="fill",
            try_number=1,
            start="2026-01-01T00:00:00+00:00",
            end="2026-01-01T00:00:01+00:00",
            duration_s=1.0,
            command=f"echo {i}",
            image=None,
            sha=None,
            inputs=reads,
            input_generations=dict.fromkeys(reads, 0),
            preimage_b64=base64.b64encode(preimage(i)).decode(),
            host="h",
            manifest=manifest(staging / "data"),
            data_path=store.data_path(staging),
        )
        store.commit(staging, record)
        outputs[task], inputs[task] = output_id, list(reads)
    return outputs, inputs


def test_the_plan_looks_up_a_cached_output_in_at_most_two_requests(store, sent):
    """A fully cached plan: every output current, found with one listing of its
    folder and one read of its record, nothing else."""
    outputs, inputs = commit_chain(store, 20)
    warnings: list[tuple] = []
    sent.clear()
    look_all = functools.partial(store.lookup_all, warn=warnings.append)
    verdicts = assess(outputs, inputs, look_all)
    assert all(v.current for v in verdicts.values())
    assert warnings == []
    assert len(sent) <= 2 * len(outputs), "\n".join(f"{m} {u}" for m, u in sent)


def test_a_plan_of_many_cached_outputs_lists_their_folders_together(store, sent):
    """A large plan lists ``objects/`` in a few pages rather than each output's
    folder: about one request per output (its record), not two."""
    outputs, inputs = commit_chain(store, 150)
    sent.clear()
    verdicts = assess(outputs, inputs, functools.partial(store.lookup_all, warn=print))
    assert all(v.current for v in verdicts.values())
    records = [u for m, u in sent if m == "GET" and "record.json" in u]
    assert len(records) == len(outputs)
    assert len(sent) <= len(outputs) + 4, "\n".join(f"{m} {u}" for m, u in sent)


def test_outputs_sparse_among_the_stores_cost_at_most_two_requests_each(store, sent, monkeypatch):
    """Where a page of the shared listing answers for few of the outputs looked up
    (they are a small part of the store), the rest are listed one by one: a walk
    never costs more than a listing and a read per output, plus a page per run."""
    outputs, _ = commit_chain(store, 200)
    monkeypatch.setattr(store_object, "LISTED_KEYS", 20)  # a page: 10 outputs
    wanted = sorted(outputs.values())[::3][: store_object.SCAN_MIN]
    sent.clear()
    assert all(found.done for found in store.lookup_all(wanted).values())
    assert len(sent) <= 2 * len(wanted) + 1, "\n".join(f"{m} {u}" for m, u in sent)


@pytest.mark.parametrize("page", [3, 5, 1000])
def test_outputs_looked_up_together_are_found_as_each_alone(store, server, monkeypatch, page):
    """The shared listing gives each output the answer its own listing would: done,
    never committed, quarantined, a generation being written beside a done one, data
    gone, and more keys than a page holds; with pages that end inside an output, also
    where a stray name beside an output's folder (``<id>.bak/``) sorts before it."""
    monkeypatch.setattr(store_object, "LISTED_KEYS", page)
    outputs, _ = commit_chain(store, store_object.SCAN_MIN)
    ids = sorted(outputs.values())
    base = f"{store.root.path.split('/', 1)[1]}/objects"
    put = functools.partial(server.client().put_object, Bucket=server.bucket, Body=b"x")
    first = store.lookup(ids[0]).record
    staging = store.stage(ids[0])
    (staging / "data" / "out.txt").write_text("rebuilt")
    rebuilt = replace(first, generation=1, rebuilt=True, data_path=store.data_path(staging))
    store.commit(staging, replace(rebuilt, manifest=manifest(staging / "data")))
    store.quarantine(ids[0], 1)  # 0/..., 1.void: generation 0 was superseded
    put(Key=f"{base}/{ids[0]}.bak/0/record.json")
    store.quarantine(ids[1], 0)
    put(Key=f"{base}/{ids[2]}/1/0123456789abcdef/data/out.txt")  # being written
    record = store.lookup(ids[3]).record
    server.client().delete_object(
        Bucket=server.bucket, Key=f"{base}/{ids[3]}/0/{record.data_path}/out.txt"
    )
    data = f"{base}/{ids[4]}/0/{store.lookup(ids[4]).record.data_path}"
    for n in range(6):  # with pages of 5 keys, one output's keys fill a page and more
        put(Key=f"{data}/extra{n}")
    never = [hashlib.sha256(f"never {n}".encode()).hexdigest() for n in range(8)]
    together = store.lookup_all([*ids, *never])
    alone = {oid: store.lookup(oid) for oid in [*ids, *never]}
    assert together == alone
    statuses = [together[oid].status for oid in ids[:5]]
    assert statuses == [Found.MISSING, Found.MISSING, Found.DONE, Found.VANISHED, Found.DONE]
    assert {together[oid].status for oid in never} == {Found.MISSING}


def test_the_plan_looks_outputs_up_concurrently():
    """Lookups of many outputs are made many at once (after a first one alone, which
    makes the store's client): two lookups that each wait for the other to start both
    finish; one after the other, the first would wait for ever."""
    both = threading.Barrier(2, timeout=10)
    first, *others = ("1" * 64, "2" * 64, "3" * 64)

    def look(output_id: str) -> Lookup:
        if output_id in others:
            both.wait()
        return Lookup(Found.MISSING)

    found = look_up_all(look, [first, *others])
    assert [f.status for f in found.values()] == [Found.MISSING] * 3


def test_one_lookup_of_a_cached_output_is_two_requests(store, sent):
    """The check each task makes before it runs: a listing and a record read."""
    outputs, _ = commit_chain(store, 1)
    sent.clear()
    assert store.settle(outputs["t0"], print).done
    assert [method for method, _ in sent] == ["GET", "GET"], sent


def test_an_executed_task_reads_its_claim_once(store, sent, tmp_path):
    """A task that produces its output checks who holds it and claims it in one read
    of its claims: the check that would defer it to the triggerer is that read."""
    dag = Dag({})
    dag.task("fresh", {"command": 'echo new > "$ALAMODE_OUTPUT/out.txt"'})
    task = load(dag.bencode())["fresh"]
    sent.clear()
    assert run(operator(task, store, tmp_path), "d", SCHEDULED) is not None
    reads = writes = 0
    for method, url in sent:
        if f"claims%2F{task.output}" in url or f"claims/{task.output}" in url:
            writes, reads = writes + (method == "PUT"), reads + (method != "PUT")
    assert (reads, writes) == (1, 2), sent  # one look, then claimed and released


def test_a_record_set_aside_after_the_listing_is_not_replaced_by_the_one_before(store, monkeypatch):
    """Another worker quarantines generation 1 between this lookup's listing and its
    read of the record: the lookup looks again and finds the tombstone, and never
    serves generation 0, which generation 1 superseded."""
    outputs, _ = commit_chain(store, 1)
    output = outputs["t0"]
    first = store.lookup(output).record
    staging = store.stage(output)
    (staging / "data" / "out.txt").write_text("rebuilt")
    rebuilt = replace(first, generation=1, rebuilt=True, data_path=store.data_path(staging))
    store.commit(staging, replace(rebuilt, manifest=manifest(staging / "data")))
    read = store.backend.read_record

    def meanwhile(output_id: str, generation: int, etag: str | None = None) -> str:
        if generation == 1 and not store.backend.listing(output_id).void:
            store.quarantine(output_id, 1)
        return read(output_id, generation, etag)

    monkeypatch.setattr(store.backend, "read_record", meanwhile)
    found = store.lookup(output)
    assert found.status is Found.MISSING
    assert found.next_generation == 2


@pytest.mark.parametrize("page", [1, 2])
def test_an_output_with_more_keys_than_a_listing_page_is_looked_up_file_by_file(
    store, monkeypatch, server, page
):
    """When one page of a listing does not hold every key of the output's folder, the
    lookup asks for the record and the data one by one, with the same answers."""
    monkeypatch.setattr(store_object, "LISTED_KEYS", page)
    outputs, _ = commit_chain(store, 1)
    output = outputs["t0"]
    assert store.lookup(output).done
    base = f"{store.root.path.split('/', 1)[1]}/objects/{output}"
    half = f"{base}/1/0123456789abcdef/data/out.txt"
    server.client().put_object(Bucket=server.bucket, Key=half, Body=b"half")
    found = store.lookup(output)
    assert (found.status, found.generation) == (Found.DONE, 0)  # 1 is being written
    data = f"{base}/0/{found.record.data_path}/out.txt"
    server.client().delete_object(Bucket=server.bucket, Key=data)
    assert store.lookup(output).status is Found.VANISHED
    assert store.settle(output, lambda *args: None).status is Found.MISSING
    assert store.lookup(output).next_generation == 1


def test_a_task_whose_output_another_attempt_holds_defers_after_one_read(store, sent, tmp_path):
    """Another run's live claim: the task waits in the triggerer for that output, and
    takes no claim of its own; the one read of the claims told it so."""
    dag = Dag({})
    dag.task("shared", {"command": 'echo new > "$ALAMODE_OUTPUT/out.txt"'})
    task = load(dag.bencode())["shared"]
    holder = Claim(0, "other/run-1/shared/-1", "1", "elsewhere", time.time(), 60.0)
    claims = Claims(store.root)
    assert claims._create(task.output, holder)
    sent.clear()
    with pytest.raises(TaskDeferred) as deferred:
        run(operator(task, store, tmp_path), "d", SCHEDULED)
    touched = [(m, u) for m, u in sent if f"claims%2F{task.output}" in u or "claims/" in u]
    assert [m for m, _ in touched] == ["GET", "GET"], touched  # the listing, the claim
    trigger = deferred.value.trigger
    assert isinstance(trigger, ClaimReleasedTrigger)
    assert trigger.output_id == task.output
    assert claims._numbers(task.output) == [0]


def test_an_outputs_history_is_one_listing_and_a_read_per_record(store, sent):
    """``explain`` and lineage walk an output's generations: each record is read once,
    and whether its data is there comes from the one listing."""
    outputs, _ = commit_chain(store, 1)
    output = outputs["t0"]
    first = store.lookup(output).record
    staging = store.stage(output)
    (staging / "data" / "out.txt").write_text("rebuilt")
    rebuilt = replace(first, generation=1, rebuilt=True, data_path=store.data_path(staging))
    store.commit(staging, replace(rebuilt, manifest=manifest(staging / "data")))
    sent.clear()
    assert [(f.status, f.generation) for f in store.history(output)] == [
        (Found.DONE, 0),
        (Found.DONE, 1),
    ]
    assert len(sent) == 3, sent


@pytest.fixture
def cached(monkeypatch, tmp_path) -> Path:
    """A record cache in a folder of the test's own."""
    monkeypatch.setenv("AIRFLOW__ALAMODE__RECORD_CACHE", str(tmp_path / "records"))
    return tmp_path / "records"


def test_a_plan_run_again_on_the_same_machine_reads_no_record(store, sent, cached):
    """Records never change: a plan made again on a machine that read them costs the
    listing pages alone, and finds the same verdicts."""
    outputs, inputs = commit_chain(store, 100)
    first = assess(outputs, inputs, store.lookup_all)
    sent.clear()
    again = assess(outputs, inputs, store.lookup_all)
    assert again == first
    assert all(v.current for v in again.values())
    assert not [u for m, u in sent if "record.json" in u], sent
    assert len(sent) <= 4, sent


def test_a_plan_on_the_machine_whose_tasks_committed_reads_no_record(store, sent, cached):
    """A task keeps the record it committed: the next plan on that machine (every
    task of a LocalExecutor deployment) costs the listing pages alone."""
    outputs, inputs = commit_chain(store, 100)
    sent.clear()
    verdicts = assess(outputs, inputs, store.lookup_all)
    assert all(v.current for v in verdicts.values())
    assert not [u for m, u in sent if "record.json" in u], sent
    assert len(sent) <= 4, sent


def test_a_kept_record_is_used_only_while_it_is_the_stores(store, server, sent, cached):
    """A copy that differs from the store's record is never served: a copy damaged
    here is read again from the store; a record replaced in the store (by hand) is
    read as it is now, and the copy replaced."""
    outputs, _ = commit_chain(store, 1)
    output = outputs["t0"]
    record = store.lookup(output).record
    (copy,) = [p for p in cached.rglob("*") if p.is_file()]
    copy.write_text(copy.read_text().replace('"host": "h"', '"host": "x"'))
    assert store.lookup(output).record == record
    assert json.loads(copy.read_text())["host"] == "h"
    key = f"{store.root.path.split('/', 1)[1]}/objects/{output}/0/record.json"
    changed = record.dumps().replace('"host": "h"', '"host": "elsewhere"')
    server.client().put_object(Bucket=server.bucket, Key=key, Body=changed.encode())
    sent.clear()
    assert store.lookup(output).record.host == "elsewhere"
    assert [m for m, u in sent if "record.json" in u] == ["GET"], sent


def other_dags_records(server, store: OutputStore, n: int) -> None:
    """``n`` outputs of other DAGs (``e00`` to ``e09``, tasks ``t00`` to ``t19``; none
    is ``clean``), uploaded straight to the bucket as a commit leaves them."""
    from concurrent.futures import ThreadPoolExecutor

    client, base = server.client(), store.root.path.split("/", 1)[1]

    def upload(i: int) -> None:
        command = f"echo {i}"
        body = f"d7:command{len(command)}:{command}6:inputsdee".encode()
        output_id = hashlib.sha256(body).hexdigest()
        record = SuccessRecord(
            output_id=output_id,
            dag_id=f"e{i % 10:02d}",
            task=f"t{i // 10 % 20:02d}",
            run_id="fill",
            try_number=1,
            start="2026-01-01T00:00:00+00:00",
            end="2026-01-01T00:00:01+00:00",
            duration_s=1.0,
            command=command,
            image=None,
            sha=None,
            inputs={},
            preimage_b64=base64.b64encode(body).decode(),
            host="h",
            manifest=(),
        )
        key = f"{base}/objects/{output_id}/0/record.json"
        client.put_object(Bucket=server.bucket, Key=key, Body=record.dumps().encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, range(n)))


def test_explain_reads_one_tasks_records_whatever_else_the_store_holds(store, sent, server):
    """``explain`` on a store of many records of other DAGs: a listing of the task's
    markers and a read of each earlier output of the task (at most 20 requests in
    all), never a listing of ``objects/`` nor a read of another task's record."""
    from alamode_airflow.history import explain
    from tests.unit.test_task_index import commit, single

    other_dags_records(server, store, 200)
    for v in range(3):
        commit(store, load(single("sales", f"clean.py --v{v}").bencode()), "sales", f"2026-01-0{v}")
    commit(store, load(single("hr", "clean.py --v2 -x").bencode()), "hr", "2026-01-05")
    sent.clear()
    result = explain(load(single("sales", "clean.py --v2 -y").bencode()), "clean", store)
    assert (result.nearest.dag_id, result.nearest.run_id) == ("sales", "2026-01-02")
    shown = "\n".join(f"{method} {url}" for method, url in sent)
    assert len(sent) <= 20, shown
    assert len([url for _, url in sent if url.endswith("/record.json")]) == 3, shown
    assert not [url for _, url in sent if "objects%2F&" in url or url.endswith("objects%2F")], shown


def test_a_plan_on_a_machine_that_keeps_nothing_reads_its_dags_pack(store, sent):
    """A plan writes the records it read as one pack for its DAG; the next plan, on a
    machine that keeps no record (a fresh pod), reads the pack instead of each record,
    and writes nothing when nothing changed."""
    outputs, inputs = commit_chain(store, 100)
    first = assess(outputs, inputs, functools.partial(store.lookup_all, pack="d"))
    assert [m for m, u in sent if "packs" in u][-1:] == ["PUT"]
    sent.clear()
    fresh = OutputStore(store.url, conn_id=store.conn_id)
    again = assess(outputs, inputs, functools.partial(fresh.lookup_all, pack="d"))
    assert again == first
    assert not [u for m, u in sent if "record.json" in u], sent
    assert [m for m, u in sent if "packs" in u] == ["GET"], sent
    assert len(sent) <= 5, sent


def read_pack(server, key: str) -> dict:
    body = server.client().get_object(Bucket=server.bucket, Key=key)["Body"].read()
    return json.loads(gzip.decompress(body))


def test_a_pack_is_a_copy_served_only_while_it_is_the_stores(store, server, sent):
    """A record in the pack that differs from the store's (the pack edited, or the
    record replaced by hand since) is read from the store, and the pack made again."""
    outputs, _ = commit_chain(store, store_object.SCAN_MIN)
    ids = sorted(outputs.values())
    store.lookup_all(ids, pack="d")
    base = store.root.path.split("/", 1)[1]
    key = f"{base}/packs/d.json.gz"
    pack = read_pack(server, key)
    entry = f"{ids[0]}/0"
    pack["records"][entry] = pack["records"][entry].replace('"host": "h"', '"host": "forged"')
    body = gzip.compress(json.dumps(pack).encode())
    server.client().put_object(Bucket=server.bucket, Key=key, Body=body)
    sent.clear()
    found = OutputStore(store.url, conn_id=store.conn_id).lookup_all(ids, pack="d")
    assert found[ids[0]].record.host == "h"
    assert len([u for m, u in sent if "record.json" in u]) == 1, sent
    pack = read_pack(server, key)
    assert '"host": "h"' in pack["records"][entry]


@pytest.mark.parametrize(
    "body", [b"not a pack", gzip.compress(b"[1, 2]"), gzip.compress(b'{"format": 1}')]
)
def test_a_damaged_pack_costs_reads_and_is_made_again(store, server, body):
    outputs, _ = commit_chain(store, store_object.SCAN_MIN)
    key = f"{store.root.path.split('/', 1)[1]}/packs/d.json.gz"
    server.client().put_object(Bucket=server.bucket, Key=key, Body=body)
    found = store.lookup_all(outputs.values(), pack="d")
    assert all(f.done for f in found.values())
    assert len(read_pack(server, key)["records"]) == len(outputs)


def test_a_pack_of_another_format_is_neither_used_nor_written_over(store, server, sent):
    """During a rolling upgrade, a newer version's pack is left to it."""
    outputs, _ = commit_chain(store, store_object.SCAN_MIN)
    key = f"{store.root.path.split('/', 1)[1]}/packs/d.json.gz"
    newer = gzip.compress(json.dumps({"format": 2, "records": {}}).encode())
    server.client().put_object(Bucket=server.bucket, Key=key, Body=newer)
    sent.clear()
    assert all(f.done for f in store.lookup_all(outputs.values(), pack="d").values())
    assert [m for m, u in sent if "packs" in u] == ["GET"], sent
    assert read_pack(server, key) == {"format": 2, "records": {}}


def test_a_store_that_cannot_list_from_a_key_is_listed_output_by_output(store, monkeypatch):
    """S3 directory buckets refuse ``StartAfter``: the walk lists each output's folder."""
    outputs, _ = commit_chain(store, store_object.SCAN_MIN)
    fs = store.root.fs
    call = fs.call_s3

    def directory_bucket(method, *args, **kwargs):
        if "StartAfter" in kwargs:
            raise OSError(22, "InvalidArgument: StartAfter is not supported")
        return call(method, *args, **kwargs)

    monkeypatch.setattr(fs, "call_s3", directory_bucket)
    assert all(found.done for found in store.lookup_all(outputs.values()).values())
