"""Receipts: a plan of cached outputs on an object store reads the listing, not each
record (moto's S3 server on loopback, every request counted), and a receipt never
changes an answer the record would give."""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
from dataclasses import replace

import pytest

from alamode_airflow.currency import assess
from alamode_airflow.manifests import manifest
from alamode_airflow.receipts import Receipt, borne_out, files_digest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import RECORD, Found, OutputStore

N = 80  # over ``store_object.SCAN_MIN``: the folders are listed together


def preimage(n: int) -> bytes:
    return f"d7:command{len(str(n)) + 5}:echo {n}e".encode()


def record_of(store: OutputStore, n: int, staging, reads: dict[str, SuccessRecord], g: int = 0):
    output_id = hashlib.sha256(preimage(n)).hexdigest()
    return SuccessRecord(
        output_id=output_id,
        dag_id="d",
        task=f"t{n}",
        run_id=f"fill-{g}",
        try_number=1,
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:01+00:00",
        duration_s=1.0,
        command=f"echo {n}",
        image=None,
        sha=None,
        inputs={name: r.output_id for name, r in reads.items()},
        input_generations={name: r.generation for name, r in reads.items()},
        input_digests={name: r.digest for name, r in reads.items()},
        preimage_b64=base64.b64encode(preimage(n)).decode(),
        host="h",
        manifest=manifest(staging / "data"),
        generation=g,
        data_path=store.data_path(staging),
    )


def commit(store: OutputStore, n: int, reads: dict[str, SuccessRecord], g: int = 0):
    """Task ``t<n>``'s output committed as the engine commits it (two files)."""
    staging = store.stage(hashlib.sha256(preimage(n)).hexdigest())
    (staging / "data" / "out.txt").write_text(f"t{n} generation {g}")
    (staging / "data" / "sub").mkdir()
    (staging / "data" / "sub" / "more.txt").write_text("more")
    record = record_of(store, n, staging, reads, g)
    store.commit(staging, record)
    return record


def chain(store: OutputStore, n: int):
    """t0 -> t1 -> ... committed once each: (task -> output ID, task -> inputs, records)."""
    records: dict[str, SuccessRecord] = {}
    for i in range(n):
        reads = {f"t{i - 1}": records[f"t{i - 1}"]} if i else {}
        records[f"t{i}"] = commit(store, i, reads)
    outputs = {task: r.output_id for task, r in records.items()}
    inputs = {task: list(r.inputs) for task, r in records.items()}
    return outputs, inputs, records


def plan(store: OutputStore, outputs, inputs, warned: list | None = None):
    """``currency.assess`` as the plan task calls it."""
    warn = (warned if warned is not None else []).append
    look_all = functools.partial(store.lookup_all, warn=lambda *a: warn(a), by_receipt=True)
    return assess(outputs, inputs, look_all, with_records=store.with_records)


def key_of(store: OutputStore, output_id: str, *parts: str) -> str:
    return "/".join([store.root.path.split("/", 1)[1], "objects", output_id, *parts])


def test_a_fully_cached_plan_reads_no_record(s3_store, s3_sent):
    """Every output current from the listing pages alone: no record read, and a
    handful of requests for all of them rather than one per output."""
    outputs, inputs, _ = chain(s3_store, N)
    s3_sent.clear()
    verdicts = plan(OutputStore(s3_store.url, conn_id=s3_store.conn_id), outputs, inputs)
    assert all(v.current for v in verdicts.values())
    assert not [u for _, u in s3_sent if RECORD in u], s3_sent
    assert len(s3_sent) <= 4, s3_sent


def test_a_plan_by_receipts_finds_what_the_records_say(s3_store):
    """The same verdicts as record by record: current, and stale with the input named
    after an input was rebuilt (the receipt says stale; the record says why)."""
    outputs, inputs, records = chain(s3_store, N)
    commit(s3_store, 5, {"t4": records["t4"]}, g=1)
    by_records = assess(outputs, inputs, s3_store.lookup_all)
    verdicts = plan(s3_store, outputs, inputs)
    assert [(v.current, v.stale) for v in verdicts.values()] == [
        (v.current, v.stale) for v in by_records.values()
    ]
    assert verdicts["t6"].stale == "input t5 is now generation 1"
    assert verdicts["t5"].found.receipt.generation == 1
    assert [t for t, v in verdicts.items() if not v.current] == [f"t{i}" for i in range(6, N)]


def test_an_output_that_lost_a_file_is_not_current_by_its_receipt(s3_store, server):
    """Its receipt is not borne out by the listing: the record is read, the output found
    vanished and moved aside, receipt and all, and everything after it is remade."""
    outputs, inputs, records = chain(s3_store, N)
    gone = f"{key_of(s3_store, outputs['t3'], '0', records['t3'].data_path)}/sub/more.txt"
    server.client().delete_object(Bucket=server.bucket, Key=gone)
    warned: list = []
    verdicts = plan(s3_store, outputs, inputs, warned)
    assert [t for t, v in verdicts.items() if not v.current] == [f"t{i}" for i in range(3, N)]
    assert verdicts["t3"].found.status is Found.MISSING
    assert "data is gone or changed" in str(warned)
    left = server.client().list_objects_v2(
        Bucket=server.bucket, Prefix=key_of(s3_store, outputs["t3"])
    )
    assert not [o["Key"] for o in left.get("Contents", ()) if "/receipt." in o["Key"]]


def test_a_record_replaced_by_hand_is_read_not_its_receipt(s3_store, server, s3_sent):
    """The listed ETag is no longer the MD5 the receipt names: the record there is read."""
    outputs, inputs, records = chain(s3_store, N)
    key = key_of(s3_store, outputs["t2"], "0", RECORD)
    forged = replace(records["t2"], host="elsewhere")
    server.client().put_object(Bucket=server.bucket, Key=key, Body=forged.dumps().encode())
    s3_sent.clear()
    verdicts = plan(s3_store, outputs, inputs)
    assert verdicts["t2"].found.record.host == "elsewhere"
    assert all(v.current for v in verdicts.values())
    reads = [u for method, u in s3_sent if method == "GET" and u.endswith(RECORD)]
    assert len(reads) == 1, s3_sent
    assert outputs["t2"] in reads[0]


def test_a_commit_receipts_what_its_record_says():
    record = SuccessRecord.loads(
        SuccessRecord(
            output_id=hashlib.sha256(preimage(1)).hexdigest(),
            dag_id="d",
            task="t1",
            run_id="r",
            try_number=1,
            start="s",
            end="e",
            duration_s=0.0,
            command="echo 1",
            image=None,
            sha=None,
            inputs={"t0": "0" * 64},
            input_generations={"t0": 2},
            input_digests={"t0": "a" * 64},
            preimage_b64=base64.b64encode(preimage(1)).decode(),
            host="h",
            data_path="0123456789abcdef/data",
        ).dumps()
    )
    text = record.dumps().encode()
    receipt = Receipt.of(record, text)
    assert Receipt.parse(record.output_id, 0, receipt.name) == receipt
    assert Receipt.parse(record.output_id, 1, receipt.name) is None  # the folder copied as 1/
    newer = receipt.name.replace("receipt.3.", "receipt.4.")
    assert Receipt.parse(record.output_id, 0, newer) is None  # a record this version cannot read
    assert receipt.record_md5 == hashlib.md5(text).hexdigest()
    keys = {f"0/{RECORD}": f'"{receipt.record_md5}"'}
    assert receipt.holds(keys, {})
    assert borne_out(record.output_id, 0, {**keys, f"0/{receipt.name}": None}, {}) == receipt
    elsewhere = Receipt.parse("1" * 64, 0, receipt.name)  # the folder copied to another output
    assert not elsewhere.holds(keys, {})
    assert not receipt.holds({f"0/{RECORD}": '"' + "0" * 32 + '"'}, {})
    assert Receipt.of(replace(record, data_path="data"), text) is None  # a local commit's
    assert Receipt.of(replace(record, input_digests={}), text) is None  # digests unknown


@pytest.mark.parametrize(
    "listed",
    [
        {"a.txt": 1},  # a file gone
        {"a.txt": 1, "b.txt": 3},  # a size changed
        {"a.txt": 1, "b.txt": 2, "c.txt": 0},  # a file the manifest does not name
    ],
)
def test_a_receipt_holds_only_the_files_the_manifest_names_at_their_sizes(listed):
    named = files_digest("0" * 64, 0, [("a.txt", 1), ("b.txt", 2)])
    assert named == files_digest("0" * 64, 0, [("b.txt", 2), ("a.txt", 1)])
    assert named != files_digest("0" * 64, 0, listed.items())


def test_an_output_made_stale_by_an_input_costs_one_read(s3_store, s3_sent):
    """Only the output that read the rebuilt input has its record read (to say which
    input changed); everything after it is stale because it is being made again."""
    outputs, inputs, records = chain(s3_store, N)
    commit(s3_store, 5, {"t4": records["t4"]}, g=1)
    s3_sent.clear()
    verdicts = plan(OutputStore(s3_store.url, conn_id=s3_store.conn_id), outputs, inputs)
    assert verdicts["t7"].stale == "input t6 is being computed again"
    reads = [url for method, url in s3_sent if method == "GET" and url.endswith(RECORD)]
    assert len(reads) == 1, s3_sent
    assert outputs["t6"] in reads[0]
    assert len(s3_sent) <= 5, s3_sent


def put_record(server, store: OutputStore, output_id: str, text: str) -> None:
    """A record's key replaced by hand, its receipt left as it was."""
    key = key_of(store, output_id, "0", RECORD)
    server.client().put_object(Bucket=server.bucket, Key=key, Body=text.encode())


def test_a_receipt_of_a_newer_record_format_is_not_believed(s3_store, server):
    """During a rolling upgrade: a newer version's record and receipt are left to it."""
    outputs, _, records = chain(s3_store, 3)
    text = records["t1"].dumps().replace('"format": 3', '"format": 4')
    put_record(server, s3_store, outputs["t1"], text)
    receipt = Receipt.of(records["t1"], text.encode())
    newer = receipt.name.replace("receipt.3.", "receipt.4.")
    key = key_of(s3_store, outputs["t1"], "0", newer)
    server.client().put_object(Bucket=server.bucket, Key=key, Body=b"")
    found = s3_store.lookup_all(outputs.values(), by_receipt=True)[outputs["t1"]]
    assert found.status is Found.NEWER


def test_a_commit_whose_receipt_cannot_be_written_stands(s3_store, monkeypatch):
    """The receipt only spares reads: any failure to write it leaves the commit done."""
    from botocore.exceptions import EndpointConnectionError

    real = type(s3_store.root).write_bytes

    def refuse(path, data):
        if "/receipt." in str(path):
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        return real(path, data)

    monkeypatch.setattr(type(s3_store.root), "write_bytes", refuse)
    record = commit(s3_store, 0, {})
    assert (
        s3_store.lookup_all([record.output_id], by_receipt=True)[record.output_id].record == record
    )


def test_the_readers_of_a_rebuilt_input_each_say_why_after_one_pass(s3_store, s3_sent):
    """An input read by many outputs is rebuilt: each reader is stale, named by its
    record, and those records are read together once the pass is over."""
    root = commit(s3_store, 0, {})
    readers = {f"t{i}": commit(s3_store, i, {"t0": root}) for i in range(1, N)}
    outputs = {"t0": root.output_id} | {task: r.output_id for task, r in readers.items()}
    inputs = {"t0": []} | {task: ["t0"] for task in readers}
    commit(s3_store, 0, {}, g=1)
    s3_sent.clear()
    fresh = OutputStore(s3_store.url, conn_id=s3_store.conn_id)
    asking: set[str] = set()  # the threads that read a record for its reason

    def with_record(output_id, found):
        asking.add(threading.current_thread().name)
        return OutputStore.with_record(fresh, output_id, found)

    fresh.with_record = with_record
    verdicts = plan(fresh, outputs, inputs)
    assert verdicts["t0"].current
    assert {v.stale for t, v in verdicts.items() if t != "t0"} == {"input t0 is now generation 1"}
    reads = [url for method, url in s3_sent if method == "GET" and url.endswith(RECORD)]
    assert len(reads) == len(readers), s3_sent
    assert len(asking) > 1, asking  # many at once, not one after another


def test_a_generation_another_worker_moves_aside_meanwhile_is_no_error(
    s3_store, server, monkeypatch
):
    """Two workers quarantine one generation: the one that finds it gone after it
    listed the data (receipt included) stops quietly, as it did before receipts."""
    record = commit(s3_store, 1, {})
    fs = s3_store.root.fs
    find = type(fs).find
    folder = key_of(s3_store, record.output_id, "0") + "/"

    def the_other_worker_finishes(self, path, *args, **kwargs):
        found = find(self, path, *args, **kwargs)
        client = server.client()
        for item in client.list_objects_v2(Bucket=server.bucket, Prefix=folder)["Contents"]:
            client.delete_object(Bucket=server.bucket, Key=item["Key"])
        return found

    monkeypatch.setattr(type(fs), "find", the_other_worker_finishes)
    s3_store.backend.quarantine(record.output_id, 0)
    left = server.client().list_objects_v2(Bucket=server.bucket, Prefix=folder)
    assert "Contents" not in left
