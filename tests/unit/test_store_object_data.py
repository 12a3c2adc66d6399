"""Whether an output's data is whole on an object store, judged from the listing a
lookup makes anyway (moto's S3 server on loopback): a lifecycle rule deletes a prefix's
objects one by one, so an output can lose some of its files and keep others."""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path

import pytest

from alamode_airflow import store_object
from alamode_airflow.currency import assess
from alamode_airflow.manifests import manifest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import Found, OutputStore

FILES = ("a.txt", "b.txt", "c/d.txt")


@pytest.fixture
def store(s3_store) -> OutputStore:
    return s3_store


@pytest.fixture
def sent(s3_sent) -> list[tuple[str, str]]:
    return s3_sent


def commit(store: OutputStore, n: int) -> SuccessRecord:
    """Task ``t<n>``'s output committed once, with the files ``FILES`` and a link."""
    preimage = f"d7:command{len(str(n)) + 5}:echo {n}e".encode()
    output_id = hashlib.sha256(preimage).hexdigest()
    staging = store.stage(output_id)
    for name in FILES:
        (staging / "data" / name).parent.mkdir(exist_ok=True)
        (staging / "data" / name).write_text(f"{name} of t{n}")
    (staging / "data" / "latest").symlink_to("a.txt")
    record = SuccessRecord(
        output_id=output_id,
        dag_id="d",
        task=f"t{n}",
        run_id="fill",
        try_number=1,
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:01+00:00",
        duration_s=1.0,
        command=f"echo {n}",
        image=None,
        sha=None,
        inputs={},
        input_generations={},
        preimage_b64=base64.b64encode(preimage).decode(),
        host="h",
        manifest=manifest(staging / "data"),
        data_path=store.data_path(staging),
    )
    store.commit(staging, record)
    return record


def data_key(store: OutputStore, record: SuccessRecord, name: str) -> str:
    return f"{store.data_of(record).path.split('/', 1)[1]}/{name}"


@pytest.mark.parametrize("gone", FILES[1:])
def test_an_output_that_lost_a_file_is_vanished_and_built_again(store, server, sent, gone):
    """Its first file is there and another is not: the lookup finds it vanished from
    the listing it makes anyway (still two requests), and settling it moves it aside,
    so the next producer builds generation 1 rather than readers failing on fetch."""
    record = commit(store, 0)
    assert store.lookup(record.output_id).done
    server.client().delete_object(Bucket=server.bucket, Key=data_key(store, record, gone))
    sent.clear()
    found = store.lookup(record.output_id)
    assert found.status is Found.VANISHED, found
    assert [method for method, _ in sent] == ["GET", "GET"], sent
    warnings: list[tuple] = []
    settled = store.settle(record.output_id, lambda *args: warnings.append(args))
    assert (settled.status, settled.next_generation) == (Found.MISSING, 1)
    assert len(warnings) == 1


def test_an_output_whose_file_was_written_over_with_other_bytes_is_vanished(store, server):
    """A file the listing holds with another size than the manifest's is not the
    committed file."""
    record = commit(store, 0)
    key = data_key(store, record, "b.txt")
    server.client().put_object(Bucket=server.bucket, Key=key, Body=b"other, longer bytes")
    assert store.lookup(record.output_id).status is Found.VANISHED


def test_a_plan_rebuilds_an_output_that_lost_a_file(store, server, sent):
    """The plan's walk (its folders listed together, in pages of ``objects/``) finds
    the output that lost a file not current, and every other one current, at no more
    requests than a whole store costs: a record read per output and a few pages."""
    records = [commit(store, n) for n in range(store_object.SCAN_MIN)]
    lost = records[5]
    server.client().delete_object(Bucket=server.bucket, Key=data_key(store, lost, "c/d.txt"))
    outputs = {record.task: record.output_id for record in records}
    sent.clear()
    look_all = functools.partial(store.lookup_all, warn=lambda *args: None)
    verdicts = assess(outputs, {task: [] for task in outputs}, look_all)
    assert [task for task, verdict in verdicts.items() if not verdict.current] == [lost.task]
    walk = [(m, u) for m, u in sent if lost.output_id not in u]
    reads = [url for method, url in walk if method == "GET" and "record.json" in url]
    assert len(reads) == len(outputs) - 1
    assert len(walk) <= len(outputs) + 4, "\n".join(f"{m} {u}" for m, u in walk)


def test_a_whole_output_with_a_link_is_done_and_fetched_whole(store, tmp_path: Path):
    """Links are not uploaded (fetch makes them from the manifest): a whole output is
    done, alone and in a walk, and a reader gets every file and the link."""
    records = [commit(store, n) for n in range(store_object.SCAN_MIN)]
    assert all(found.done for found in store.lookup_all(r.output_id for r in records).values())
    found = store.lookup(records[0].output_id)
    assert found.done
    into = store.fetch(found.record, tmp_path / "in")
    assert (into / "latest").read_text() == "a.txt of t0"
    assert (into / "c" / "d.txt").read_text() == "c/d.txt of t0"


def test_an_empty_page_marked_truncated_leaves_the_outputs_to_their_own_listings(
    store, monkeypatch
):
    """S3 may end a page early, even with no key in it: the walk does not fail, and
    the outputs that page did not answer for are listed each."""
    records = [commit(store, n) for n in range(store_object.SCAN_MIN)]
    fs = store.root.fs
    call = fs.call_s3

    def empty_pages(method, *args, **kwargs):
        if "StartAfter" in kwargs:
            return {"IsTruncated": True, "Contents": [], "KeyCount": 0}
        return call(method, *args, **kwargs)

    monkeypatch.setattr(fs, "call_s3", empty_pages)
    found = store.lookup_all(record.output_id for record in records)
    assert all(lookup.done for lookup in found.values())
