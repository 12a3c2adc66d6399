"""The store's commit protocol on a local root: what a user relies on when a run is
killed, raced or its records damaged."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from a_la_mode import AlamodeError
from alamode_airflow import gc
from alamode_airflow.manifests import manifest
from alamode_airflow.records import FORMAT, SuccessRecord
from alamode_airflow.store import Committed, Found, OutputStore

PREIMAGE = b"d7:command4:true6:inputsdee"
OUTPUT = hashlib.sha256(PREIMAGE).hexdigest()


def record_for(staging, run_id="run-1", store=None) -> SuccessRecord:
    return SuccessRecord(
        output_id=OUTPUT,
        dag_id="d",
        task="t",
        run_id=run_id,
        try_number=1,
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:01+00:00",
        duration_s=1.0,
        command="true",
        image=None,
        sha=None,
        inputs={},
        preimage_b64=base64.b64encode(PREIMAGE).decode(),
        host="h",
        manifest=manifest(staging / "data"),
        data_path=store.data_path(staging) if store else "data",
    )


def attempt(store, text="hello", run_id="run-1"):
    staging = store.stage(OUTPUT)
    (staging / "data" / "out.txt").write_text(text)
    return staging, record_for(staging, run_id, store)


@pytest.fixture
def store(tmp_path) -> OutputStore:
    return OutputStore(str(tmp_path / "root"))


def test_nothing_is_visible_until_commit(store, tmp_path):
    staging, record = attempt(store)
    assert store.lookup(OUTPUT).status is Found.MISSING
    assert store.commit(staging, record) is Committed.COMMITTED
    found = store.lookup(OUTPUT)
    assert found.done
    assert found.record.run_id == "run-1"
    assert (tmp_path / "root/objects" / OUTPUT / "0/data/out.txt").read_text() == "hello"
    assert list((tmp_path / "root/staging").iterdir()) == []
    assert found.record.manifest[0].sha256 == hashlib.sha256(b"hello").hexdigest()


def test_second_commit_of_the_same_output_loses_and_changes_nothing(store, tmp_path):
    first, record = attempt(store, "first")
    second, other = attempt(store, "second", run_id="run-2")
    assert store.commit(first, record) is Committed.COMMITTED
    assert store.commit(second, other) is Committed.ALREADY
    assert (tmp_path / "root/objects" / OUTPUT / "0/data/out.txt").read_text() == "first"
    assert store.lookup(OUTPUT).record.run_id == "run-1"
    assert not second.exists()


def test_a_discarded_attempt_leaves_no_trace(store, tmp_path):
    staging, _ = attempt(store)
    store.discard(staging)
    assert store.lookup(OUTPUT).status is Found.MISSING
    assert list((tmp_path / "root/staging").iterdir()) == []


@pytest.mark.parametrize(
    ("damage", "status"),
    [
        (lambda obj: (obj / "record.json").write_text("{not json"), Found.CORRUPT),
        (lambda obj: (obj / "record.json").write_text(json.dumps({"format": "x"})), Found.CORRUPT),
        (lambda obj: __import__("shutil").rmtree(obj / "data"), Found.VANISHED),
        (lambda obj: (obj / "record.json").unlink(), Found.CORRUPT),
    ],
)
def test_damaged_objects_are_misses_and_can_be_quarantined(store, tmp_path, damage, status):
    staging, record = attempt(store)
    store.commit(staging, record)
    damage(tmp_path / "root/objects" / OUTPUT / "0")
    found = store.lookup(OUTPUT)
    assert (found.status, found.generation) == (status, 0)
    assert found.reason
    store.quarantine(OUTPUT, 0)
    assert store.lookup(OUTPUT).status is Found.MISSING
    (kept,) = (tmp_path / "root/quarantine").iterdir()
    assert kept.name.startswith(OUTPUT)
    again, record = attempt(store, "again")
    assert store.commit(again, record) is Committed.COMMITTED


def test_record_whose_preimage_does_not_hash_to_its_id_is_refused(store):
    _staging, record = attempt(store)
    data = record.to_json()
    data["preimage_b64"] = base64.b64encode(b"something else").decode()
    data["manifest"] = []
    with pytest.raises(ValueError, match="record preimage hashes to"):
        SuccessRecord.loads(json.dumps(data))


def test_record_json_round_trip(store):
    _staging, record = attempt(store)
    assert SuccessRecord.loads(record.dumps()) == record
    assert record.produced_by() == "run run-1 of d.t (try 1) at 2026-01-01T00:00:01+00:00"


def test_generations_keep_old_outputs_and_the_latest_wins(store, tmp_path):
    first, record = attempt(store, "v0")
    store.commit(first, record)
    again, rebuilt = attempt(store, "v1", run_id="run-2")
    rebuilt = replace(rebuilt, generation=1, rebuilt=True)
    assert store.commit(again, rebuilt) is Committed.COMMITTED
    assert store.lookup(OUTPUT).record.run_id == "run-2"
    assert Path(store.location(OUTPUT).path, "out.txt").read_text() == "v1"
    assert Path(store.location(OUTPUT, 0).path, "out.txt").read_text() == "v0"
    assert [found.record.run_id for found in store.history(OUTPUT)] == ["run-1", "run-2"]


def test_a_superseded_generation_never_becomes_current_again(store, tmp_path):
    """Generation 1 replaced generation 0; when generation 1's data vanishes, the
    output is missing and is built again as generation 2, never served as 0."""
    first, record = attempt(store, "v0")
    store.commit(first, record)
    again, rebuilt = attempt(store, "v1", run_id="run-2")
    store.commit(again, replace(rebuilt, generation=1))
    shutil.rmtree(tmp_path / "root/objects" / OUTPUT / "1" / "data")
    warnings = []
    found = store.settle(OUTPUT, lambda *args: warnings.append(args[0] % args[1:]))
    assert found.status is Found.MISSING
    assert found.next_generation == 2
    assert "generation 1 was quarantined" in found.reason
    assert len(warnings) == 1
    assert "is not a success" in warnings[0]
    # Still missing for every later reader, until a producer commits generation 2.
    assert store.lookup(OUTPUT).status is Found.MISSING
    third, record = attempt(store, "v2", run_id="run-3")
    assert store.commit(third, replace(record, generation=2)) is Committed.COMMITTED
    assert store.lookup(OUTPUT).record.run_id == "run-3"
    assert [f.generation for f in store.history(OUTPUT)] == [0, 2]


def test_a_record_found_in_another_generations_folder_is_not_a_success(store, tmp_path):
    first, record = attempt(store, "v0")
    store.commit(first, record)
    folder = tmp_path / "root/objects" / OUTPUT
    shutil.copytree(folder / "0", folder / "1")  # generation 1's folder, 0's record
    found = store.lookup(OUTPUT)
    assert (found.status, found.generation) == (Found.CORRUPT, 1)
    assert "names another output" in found.reason


def test_committed_files_and_folders_are_read_only(store, tmp_path):
    staging, _ = attempt(store)
    (staging / "data" / "sub").mkdir()
    (staging / "data" / "sub" / "x").write_text("x")
    store.commit(staging, record_for(staging, store=store))
    generation = tmp_path / "root/objects" / OUTPUT / "0"
    inside = list(generation.rglob("*"))
    assert len(inside) == 5  # record.json, data, data/out.txt, data/sub, data/sub/x
    for path in inside:
        assert path.stat().st_mode & 0o222 == 0, path


def test_a_lock_file_unlinked_while_waited_on_is_not_shared_by_two_holders(store, tmp_path):
    """gc unlinks a free lock file while holding it; a producer that was waiting on
    that file must not hold it beside a producer that opened the new file."""
    import fcntl
    import os
    import threading

    store.lookup(OUTPUT)
    locks = tmp_path / "root/locks"
    locks.mkdir(parents=True)
    path = locks / f"{OUTPUT}.lock"
    handle = open(path, "a")  # noqa: SIM115
    fcntl.flock(handle, fcntl.LOCK_EX)
    holders = []

    def producer():
        with store.locked(OUTPUT):
            holders.append(os.stat(path).st_ino)

    waiting = threading.Thread(target=producer)
    waiting.start()
    time.sleep(0.3)  # the producer is now blocked in flock on the old file
    os.unlink(path)  # as gc does, while it holds the lock
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()
    waiting.join(10)
    # The waiter re-locked the file now at the path, not the unlinked one.
    assert holders
    assert path.exists()
    assert holders[0] == os.stat(path).st_ino


@pytest.mark.parametrize("bad", ["../../etc", "A" * 64, "ab" * 31, "", "0" * 63 + "/"])
def test_ids_that_are_not_output_ids_never_become_paths(store, bad):
    with pytest.raises(AlamodeError, match="is not an output ID"):
        store.lookup(bad)
    with pytest.raises(AlamodeError, match="is not an output ID"):
        gc.pin(store, bad)


def test_a_bad_current_generation_is_settled_by_its_number(store, tmp_path):
    staging, record = attempt(store)
    store.commit(staging, record)
    (tmp_path / "root/objects" / OUTPUT / "0" / "record.json").unlink()
    found = store.lookup(OUTPUT)
    assert (found.status, found.generation) == (Found.CORRUPT, 0)
    settled = store.settle(OUTPUT, lambda *args: None)
    assert settled.reason == "generation 0 was quarantined; it is built again as 1"
    assert settled.next_generation == 1


def test_a_tombstone_wins_over_a_generation_not_yet_moved_aside(store, tmp_path):
    """A quarantine stopped between its tombstone and its move: the generation is
    already not current."""
    staging, record = attempt(store)
    store.commit(staging, record)
    (tmp_path / "root/objects" / OUTPUT / "0.void").touch()
    assert store.lookup(OUTPUT).status is Found.MISSING
    assert store.lookup(OUTPUT).next_generation == 1


def test_two_outputs_can_be_quarantined_one_after_the_other(store, tmp_path):
    other = "cd" * 32
    for output_id in (OUTPUT, other):
        (tmp_path / "root/objects" / output_id / "0").mkdir(parents=True)
        store.quarantine(output_id, 0)
    assert len(list((tmp_path / "root/quarantine").iterdir())) == 2


def test_an_attempt_stages_under_its_output_id(store, tmp_path):
    staging = store.stage(OUTPUT)
    # Committed, the folder is readable by the other users the umask allows.
    assert staging.stat().st_mode & 0o055 == 0o055 & ~_umask()
    assert staging.parent == tmp_path / "root/staging"
    assert staging.name.startswith(f"{OUTPUT}.")  # gc finds a dead attempt's output by it
    assert (staging / "data").is_dir()


def test_a_producer_holds_the_output_exclusively(store, tmp_path):
    """While a producer (another process) holds the output, nobody else can take it."""
    entered = threading.Event()

    def second():
        with store.locked(OUTPUT):
            entered.set()

    with held_elsewhere(store, tmp_path):
        with store.try_locked(OUTPUT) as free:
            assert not free
        # A second producer (the default hold) waits for the first.
        waiter = threading.Thread(target=second, daemon=True)
        waiter.start()
        assert not entered.wait(0.5)
    assert entered.wait(10)  # the first let go: the second holds it now
    waiter.join(10)
    with store.try_locked(OUTPUT) as free:
        assert free


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_record_of_a_newer_format_is_left_alone(store, tmp_path):
    """Written by newer workers during a rolling upgrade: not damage. It is never
    quarantined, and this version refuses to build beside it."""
    staging, record = attempt(store)
    store.commit(staging, record)
    path = tmp_path / "root/objects" / OUTPUT / "0" / "record.json"
    path.chmod(0o644)
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": FORMAT + 1}))
    found = store.settle(OUTPUT, lambda *args: pytest.fail("settle warned"))
    assert found.status is Found.NEWER
    assert "upgrade alamode-airflow" in found.reason
    assert path.exists()
    assert not (tmp_path / "root/quarantine").exists()


def test_a_producer_is_not_kept_out_by_readers_that_keep_coming(store, tmp_path):
    """A reader holds the output; a producer waits; a reader that comes after the
    producer waits behind it (with flock alone it would be let in, and readers that
    overlap would keep a rebuild out for ever)."""
    order = []

    def hold(name: str, shared: bool) -> None:
        with store.locked(OUTPUT, shared=shared):
            order.append(name)

    with held_elsewhere(store, tmp_path, shared=True):
        producer = threading.Thread(target=hold, args=("producer", False), daemon=True)
        producer.start()
        time.sleep(0.3)  # the producer waits for the first reader
        reader = threading.Thread(target=hold, args=("reader", True), daemon=True)
        reader.start()
        time.sleep(0.3)
        assert order == []  # the later reader queues behind the producer
    producer.join(10)
    reader.join(10)
    assert order == ["producer", "reader"]


@contextlib.contextmanager
def held_elsewhere(store, tmp_path, shared: bool = False):
    """The output held by another process (a producer, or a reader when ``shared``)
    until the block ends."""
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    code = (
        "import time, pathlib\n"
        "from alamode_airflow.store import OutputStore\n"
        f"with OutputStore({store.url!r}).locked({OUTPUT!r}, shared={shared}):\n"
        f"    pathlib.Path({str(ready)!r}).touch(); time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield
    finally:
        holder.kill()
        holder.wait()
