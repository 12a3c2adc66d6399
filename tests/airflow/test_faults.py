"""Killing Airflow at random moments never leaves a partial output or a record
without its data, and the next run finishes the work."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from a_la_mode import Dag
from alamode_airflow.history import lineage
from alamode_airflow.store import OutputStore
from loopback.airflow_cli import AIRFLOW
from loopback.wait import until

pytestmark = pytest.mark.slow

KILLS = 50
# Each task writes 20 files, 20 ms apart, so kills land before, during and after the
# command, and around the commit.
SLOW_WRITER = (
    'for i in $(seq 20); do echo "$ALAMODE_TASK $i" > "$ALAMODE_OUTPUT/f$i"; sleep 0.02; done'
)


def pipeline() -> Dag:
    dag = Dag({"dag_id": "faults"})
    first = dag.task("first", {"command": SLOW_WRITER})
    second = dag.task("second", {"command": SLOW_WRITER + "; cat $ALAMODE_INPUT_FIRST/f1"})
    first >> second
    return dag


def assert_store_consistent(store: OutputStore) -> None:
    """Only whole outputs under objects/, each with a record whose manifest matches
    the bytes on disk."""
    objects = Path(store.root.path) / "objects"
    for folder in objects.iterdir() if objects.is_dir() else ():
        for found in store.history(folder.name):
            assert found.done, found.reason
            tree = lineage(store, folder.name, verify=True)
            assert tree.check.value == "ok", tree.problems


def wait_for_attempt(staging: Path, run: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until an attempt has a staging folder (or the run ended: all was done)."""
    until(
        lambda: (staging.is_dir() and any(staging.iterdir())) or run.poll() is not None,
        timeout=timeout,
        every=0.02,
        what="no attempt started",
    )


def test_random_kills_never_commit_partial_outputs(airflow):
    dag = pipeline()
    airflow.save(dag, "faults")
    store = OutputStore(str(airflow.store))
    rng = random.Random(50)
    mid_attempt = 0
    for attempt in range(KILLS):
        run = subprocess.Popen(
            [AIRFLOW, "dags", "test", "faults", f"2026-01-{attempt % 28 + 1:02d}"],
            env=airflow.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if attempt % 5 == 0:
            time.sleep(rng.uniform(0.5, 3.0))  # while Airflow starts, before any task
        else:
            # Airflow's start-up time varies with the machine and the installed
            # providers: aim at the attempts, not at a guessed clock time.
            wait_for_attempt(airflow.store / "staging", run)
            time.sleep(rng.uniform(0.0, 0.6))  # the command, its commit, the next task
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        assert_store_consistent(store)
        # A killed attempt leaves staging behind (never anything under objects/);
        # clearing it is safe only while no task runs, as here.
        leftovers = list((airflow.store / "staging").glob("*"))
        mid_attempt += bool(leftovers)
        for leftover in leftovers:
            subprocess.run(["rm", "-rf", str(leftover)], check=True)
        if all(store.lookup(t["output"]).done for t in dag.encode()["tasks"].values()):
            # Everything got committed before this kill: start over on new outputs.
            dag.first.spec["round"] = attempt
            airflow.save(dag, "faults")
    assert mid_attempt >= 20  # enough kills landed while an attempt was writing
    states = airflow.run("faults", "2026-02-01")
    assert set(states.values()) <= {"success", "skipped"}
    assert_store_consistent(store)
    for record in dag.encode()["tasks"].values():
        assert store.lookup(record["output"]).done


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB filesystem for the store (tmpfs; mounting needs root)."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_disk_full_fails_clearly_and_records_nothing(airflow, small_disk):
    airflow = type(airflow)(
        airflow.home,
        airflow.dags,
        extra_env=(("AIRFLOW__ALAMODE__STORAGE_ROOT", str(small_disk)),),
    )
    dag = Dag({"dag_id": "disk_full"})
    # The command itself succeeds: it fills the disk and ignores the error, so the
    # failure comes when the engine writes the record.
    fill = 'dd if=/dev/zero of="$ALAMODE_OUTPUT/big" bs=1k count=1024 2>/dev/null; true'
    dag.task("filler", {"command": fill}).add_dep(dag.task("small", {"command": "true"}))
    airflow.save(dag, "disk_full")
    states = airflow.run("disk_full", "2026-01-01", ok=False)
    assert states["filler"] == "failed"
    assert "No space left on device" in airflow.last_log
    store = OutputStore(str(small_disk))
    assert not store.lookup(dag.encode()["tasks"]["filler"]["output"]).done
    assert_store_consistent(store)
    assert list((small_disk / "staging").iterdir()) == []
