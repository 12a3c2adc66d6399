"""What gc's listing of an object store costs, in requests, against moto's S3 server on
loopback (each request counted as botocore sends it): a bounded number per output
whatever the store's size, the lookups many at once. Every request is a round trip
(20-50 ms on S3), so a walk that grew with the store, or went one output after
another, would take hours on a large bucket."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from a_la_mode import AlamodeError
from alamode_airflow import gc
from alamode_airflow.cli import main
from alamode_airflow.store import OutputStore
from tests.unit.counting import requests_sent
from tests.unit.test_store_requests import commit_chain

CONN_ID = "alamode_gc_requests_s3"
#: At most: one listing of the output's folder, one read of its record, and one
#: listing of its keys for its size when it is reclaimable.
PER_OUTPUT = 3


@pytest.fixture
def s3(server, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # error messages on one line
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection())
    monkeypatch.setenv("AIRFLOW__ALAMODE__STORAGE_CONN_ID", CONN_ID)
    return server


def open_store(name: str) -> OutputStore:
    return OutputStore(f"s3://alamode-outputs/{name}", conn_id=CONN_ID)


@pytest.fixture
def sent(s3) -> Iterator[list[tuple[str, str]]]:
    """(method, URL) of every request the S3 client of the connection sends."""
    with requests_sent(open_store("any").root.fs) as requests:
        yield requests


def stored_bytes(s3, prefix: str) -> int:
    """What the bucket holds under ``prefix``, as S3 itself counts it."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return sum(item["Size"] for page in pages for item in page.get("Contents", ()))


def listed(store: OutputStore, n: int, sent: list) -> tuple[gc.Plan, int]:
    """gc's plan of a chain of ``n`` outputs whose middle one a file still needs: the
    first half is kept (the middle one and its inputs), the rest reclaimable. The
    plan, and the requests it took."""
    outputs, _ = commit_chain(store, n)
    middle = outputs[f"t{n // 2}"]
    sent.clear()
    chosen = gc.plan(store, {middle}, timedelta(0))
    return chosen, len(sent)


def test_gc_lists_an_object_store_in_a_bounded_number_of_requests_per_output(s3, sent):
    """50 and 200 outputs: the same few requests per output (no listing of the whole
    store per output, no walk per root), and the same answer as on a local root."""
    counts = {}
    for n in (50, 200):
        chosen, counts[n] = listed(open_store(f"bounded-{n}"), n, sent)
        reclaimed = [c.task for c in chosen.reclaimable]
        assert reclaimed == [f"t{i}" for i in reversed(range(n // 2 + 1, n))]  # readers first
        assert [c.size for c in chosen.reclaimable] == [
            stored_bytes(s3, f"bounded-{n}/objects/{c.output_id}/") for c in chosen.reclaimable
        ]
        assert chosen.unknown == []
        assert counts[n] <= PER_OUTPUT * n + 2, f"{counts[n]} requests for {n} outputs"
    # Four times the outputs, at most four times the requests: nothing grows with N.
    assert counts[200] <= 4 * counts[50], counts
    # Past a few dozen outputs their folders are listed together, sizes and all: about
    # one read per record, no listing per output.
    assert counts[200] <= 200 + 200 // 10, counts


def test_gc_looks_outputs_up_concurrently(s3, monkeypatch):
    """Two outputs' reads each wait for the other to start: both finish only when gc
    has them in flight at once; one after the other, the first would wait for ever."""
    store = open_store("concurrent")
    outputs, _ = commit_chain(store, 3)
    *_, second, third = sorted(outputs.values())
    both = threading.Barrier(2, timeout=10)
    history = store.history

    def meeting(output_id: str, listing=None):
        if output_id in (second, third):
            both.wait()
        return history(output_id, listing)

    monkeypatch.setattr(store, "history", meeting)
    chosen = gc.plan(store, set(), timedelta(0))
    assert len(chosen.reclaimable) == 3


def answer(out: str) -> dict:
    """gc's JSON: stdout, whole (logs go to stderr)."""
    return json.loads(out)


def test_alamode_gc_lists_an_object_store_and_refuses_to_delete_there(s3, tmp_path, capsys):
    """A dry run on a bucket lists what is reclaimable, and a pin there keeps an output
    and its inputs; ``--yes`` deletes nothing (no locks there: a task reading an
    output could not keep it) and says what to do instead."""
    store = open_store("cli")
    outputs, _ = commit_chain(store, 3)
    dags = tmp_path / "dags"
    dags.mkdir()
    command = ["gc", "--store", store.url, "--dags-folder", str(dags), "--any-dags-folder"]
    assert main([*command, "--older-than", "0", "--json"]) == 0
    found = answer(capsys.readouterr().out)
    assert [c["output_id"] for c in found["reclaimable"]] == [
        outputs[t] for t in ("t2", "t1", "t0")
    ]
    assert main(["pin", outputs["t1"], "--store", store.url]) == 0
    assert f"pinned {outputs['t1']}" in capsys.readouterr().out
    assert main([*command, "--older-than", "0", "--json"]) == 0
    found = answer(capsys.readouterr().out)
    assert [c["output_id"] for c in found["reclaimable"]] == [outputs["t2"]]  # t1 keeps t0
    assert main(["unpin", outputs["t1"], "--store", store.url]) == 0
    assert f"unpinned {outputs['t1']}" in capsys.readouterr().out
    assert len(gc.plan(store, set(), timedelta(0)).reclaimable) == 3
    before = s3.keys("cli")
    assert main([*command, "--older-than", "0", "--yes"]) == 3
    err = capsys.readouterr().err
    assert "s3://alamode-outputs/cli is an object store" in err
    assert "lifecycle rules" in err
    assert s3.keys("cli") == before
    with pytest.raises(AlamodeError, match="is an object store"):
        gc.collect(store, gc.plan(store, set(), timedelta(0)))


def test_an_output_with_an_upload_but_no_record_is_kept_on_an_object_store(s3):
    """Data under a generation with no record is an attempt in progress, or a dead
    one, and gc cannot tell which: the output and its inputs are kept, and reported."""
    store = open_store("uploading")
    outputs, _ = commit_chain(store, 3)
    key = f"uploading/objects/{outputs['t1']}/1/0123456789abcdef/data/out.txt"
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=b"half")
    chosen = gc.plan(store, set(), timedelta(0))
    assert [c.task for c in chosen.reclaimable] == ["t2"]
    assert [(u.path, u.task) for u in chosen.unknown] == [(f"objects/{outputs['t1']}", "t1")]
    assert "no record at" in chosen.unknown[0].reason
