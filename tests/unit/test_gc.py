"""Garbage collection: what it keeps, what it reclaims, and that no interruption
leaves a record without its data. Helpers here serve the other test_gc_* modules."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from a_la_mode import AlamodeError, Dag, load
from a_la_mode.partitions import partition_id
from alamode_airflow import gc
from alamode_airflow.cli import main
from alamode_airflow.manifests import manifest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import OutputStore
from tests.unit.storefill import produce

OLD = "2020-01-01T00:00:00+00:00"


def chain(n: int, tag: str) -> Dag:
    dag = Dag({"dag_id": f"chain_{tag}"})
    previous = None
    for i in range(n):
        task = dag.task(f"t{i}", {"command": f"echo {tag} {i}"})
        if previous:
            task.add_dep(previous)
        previous = task
    return dag


def commit(store: OutputStore, task, inputs: dict[str, str], end: str, **kw) -> str:
    """Commit an output of ``task`` whose record names ``inputs`` (the next generation;
    ``interval`` makes it a partition): records as the engine writes them."""
    interval = kw.get("interval")
    output_id = partition_id(task.output, *interval) if interval else task.output
    generation = store.lookup(output_id).next_generation
    staging = store.stage(output_id)
    (staging / "data" / "out.txt").write_text(f"{task.name} {generation}")
    record = SuccessRecord(
        output_id=output_id,
        dag_id="collage",
        task=task.name,
        run_id="run",
        try_number=1,
        start=end,
        end=end,
        duration_s=0.0,
        command=task.spec["command"],
        image=None,
        sha=None,
        inputs=inputs,
        preimage_b64=base64.b64encode(task.preimage()).decode(),
        host="test",
        manifest=manifest(staging / "data"),
        generation=generation,
        file_output_id=task.output if interval else None,
        interval=interval,
    )
    store.commit(staging, record)
    return output_id


@contextlib.contextmanager
def held(path: Path, shared: bool = False):
    """Another process holding the flock of ``path`` (created if missing) until the
    block ends, as a task producing (exclusive) or reading (shared) an output does."""
    code = (
        "import fcntl, sys; f = open(sys.argv[1], 'a'); "
        "fcntl.flock(f, fcntl.LOCK_SH if sys.argv[2] == 'sh' else fcntl.LOCK_EX); "
        "print('held', flush=True); sys.stdin.read()"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "sh" if shared else "ex"
    argv = [sys.executable, "-c", code, str(path), mode]
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.stdin.close()
        holder.stdout.close()
        holder.wait(timeout=30)


def lock_of(store: OutputStore, output_id: str) -> Path:
    """The output's lock file path (its folder created)."""
    locks = Path(store.root.path, "locks")
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"{output_id}.lock"


@pytest.fixture(name="setup")
def store_with_old_outputs(tmp_path, monkeypatch):
    """A store holding an old pipeline's outputs and the current pipeline's outputs;
    Airflow's dags folder is the one holding the current pipeline."""
    store = OutputStore(str(tmp_path / "store"))
    dags = tmp_path / "dags"
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    current, old = chain(3, "new"), chain(3, "old")
    current.save(dags / "current.alamode")
    produce(store, load(current.bencode()), "run-new", end=OLD)
    produce(store, load(old.bencode()), "run-old", end=OLD)
    return store, dags, load(current.bencode()), load(old.bencode())


def test_roots_and_pins_are_kept_the_rest_is_reclaimable(setup):
    store, dags, _current, old = setup
    gc.pin(store, old["t0"].output)
    chosen = {c.output_id for c in gc.plan(store, gc.roots(dags), gc.parse_age("30d")).reclaimable}
    assert chosen == {old["t1"].output, old["t2"].output}
    assert gc.unpin(store, old["t0"].output) is True
    assert gc.unpin(store, old["t0"].output) is False


def test_recent_outputs_are_not_reclaimable(setup, tmp_path):
    store, dags, _, _ = setup
    fresh = chain(2, "fresh")
    produce(store, load(fresh.bencode()), "run-fresh", end="2999-01-01T00:00:00+00:00")
    chosen = gc.plan(store, gc.roots(dags), gc.parse_age("1d")).reclaimable
    assert {c.task for c in chosen} == {"t0", "t1", "t2"}
    assert all(c.newest.year == 2020 for c in chosen)


def test_collect_removes_record_and_data_together_and_spares_outputs_in_use(setup):
    store, dags, current, old = setup
    chosen = gc.plan(store, gc.roots(dags), gc.parse_age("0"))
    with held(lock_of(store, old["t1"].output), shared=True):  # a task is reading it
        outcome = gc.collect(store, chosen)
    assert outcome.deleted == [old["t2"].output]
    assert store.generations(old["t2"].output) == []
    # Only a tombstone stays: t2 built again is generation 1, never 0 with other bytes.
    assert store.lookup(old["t2"].output).next_generation == 1
    assert outcome.busy == [old["t1"].output]
    # What stays keeps its inputs: t1's lineage is whole.
    assert [oid for oid, _ in outcome.spared] == [old["t0"].output]
    assert store.lookup(old["t1"].output).done
    assert store.lookup(old["t0"].output).done
    assert all(store.lookup(task.output).done for task in current)


def test_a_file_that_cannot_be_read_stops_gc(setup):
    _, dags, _, _ = setup
    (dags / "broken.alamode").write_bytes(b"garbage")
    with pytest.raises(AlamodeError, match=r"nothing is collected: .*broken.alamode"):
        gc.roots(dags)


def test_cli_dry_run_then_yes(setup, capsys):
    store, dags, _, old = setup
    args = ["gc", "--dags-folder", str(dags), "--store", str(store.root.path), "--json"]
    assert main(args) == 0
    dry = json.loads(capsys.readouterr().out)
    assert {row["output_id"] for row in dry["reclaimable"]} == {t.output for t in old}
    assert dry["deleted"] == []
    assert all(store.lookup(t.output).done for t in old)
    assert main([*args, "--yes"]) == 0
    assert len(json.loads(capsys.readouterr().out)["deleted"]) == 3
    assert not any(store.lookup(t.output).done for t in old)
    assert main(["gc", "--dags-folder", str(dags), "--older-than", "soon"]) == 3


def test_gc_killed_at_random_points_leaves_a_consistent_store(tmp_path):
    store = OutputStore(str(tmp_path / "store"))
    dags = tmp_path / "dags"
    dags.mkdir()
    fill(store)
    objects = Path(store.root.path, "objects")
    rng = random.Random(7)
    command = [sys.executable, "-m", "alamode_airflow.cli", "gc", "--dags-folder", str(dags)]
    command += ["--any-dags-folder"]
    command += ["--store", str(store.root.path), "--older-than", "0", "--yes", "--json"]
    interrupted, delay = 0, 0.5
    # Kill gc at random moments until two kills have landed mid-collection (the delay
    # grows while kills land before gc starts deleting, as on a slow machine).
    for _ in range(20):
        before = len(built(objects))
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay + rng.uniform(0, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_consistent(store)
        left = len(built(objects))
        interrupted += 0 < left < before
        delay += 0.3 if left == before else 0
        if left == 0:  # gc finished before the kill: fill again, kill sooner
            fill(store)
            delay = max(0.0, delay - 0.5)
        if interrupted >= 2:
            break
    assert interrupted >= 1
    subprocess.run(command, check=True, capture_output=True)
    assert_consistent(store)
    assert built(objects) == []
    assert list(Path(store.root.path, "trash").iterdir()) == []


def built(objects: Path) -> list[Path]:
    """The output folders that still hold a generation (gc leaves tombstones)."""
    return [f for f in objects.iterdir() if any(c.name.isdigit() for c in f.iterdir())]


def fill(store: OutputStore) -> None:
    """1,000 old outputs: enough that deleting them takes gc about a second."""
    for batch in range(40):
        produce(store, load(chain(25, f"b{batch}").bencode()), "run", end=OLD)


def assert_consistent(store: OutputStore) -> None:
    """Every output left in objects/ is whole: each generation has its record and all
    the data its manifest lists."""
    objects = Path(store.root.path) / "objects"
    for folder in objects.iterdir():
        for found in store.history(folder.name):
            assert found.done, found.reason
            for entry in found.record.manifest:
                data = Path(store.location(folder.name, found.generation).path)
                assert os.path.getsize(data / entry.path) == entry.size


def test_gc_numbers_a_rebuilt_output_after_every_generation_it_ever_had(tmp_path):
    """Generation 1 was quarantined (tombstone) and 0 is what gc takes: built again,
    the output is generation 2; 1 named the quarantined bytes."""
    store = OutputStore(str(tmp_path / "store"))
    task = load(chain(1, "q").bencode())["t0"]
    output = commit(store, task, {}, OLD)
    commit(store, task, {}, OLD)
    store.quarantine(output, 1)
    assert store.newest_generation(output) == 1
    assert gc.collect(store, gc.plan(store, set(), gc.parse_age("1d"))).deleted == [output]
    assert store.generations(output) == []
    assert store.lookup(output).next_generation == 2
