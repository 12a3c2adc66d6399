"""gc and the outputs tasks commit while it works: what a new output read stays, however
the commit and gc's checks interleave."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from a_la_mode import load
from alamode_airflow import gc, gc_index, store_local
from alamode_airflow.history import lineage
from alamode_airflow.store import OutputStore
from tests.unit.test_gc import OLD, chain, commit
from tests.unit.test_gc_wanted import whole


def coarse_clock(folder: Path, same_tick: bool) -> None:
    """Skip the case of a change within one tick of the clock where the file system
    does not count subfolders in a folder's link count (btrfs): nothing can see it."""
    (folder / "sub").mkdir()
    counts = os.stat(folder).st_nlink == 3
    (folder / "sub").rmdir()
    if same_tick and not counts:
        pytest.skip("this file system does not count subfolders in a folder's links")


def test_an_output_committed_while_gc_takes_another_keeps_its_inputs(tmp_path, monkeypatch):
    """Y is taken first; meanwhile a task commits Z, which read W: W stays."""
    from alamode_airflow import gc_leftovers

    store = OutputStore(str(tmp_path / "store"))
    w, y = load(chain(2, "w").bencode()), load(chain(1, "y").bencode())["t0"]
    w_id, y_id = commit(store, w["t0"], {}, OLD), commit(store, y, {}, OLD)
    chosen = gc.plan(store, set(), gc.parse_age("1d"))
    chosen.reclaimable.sort(key=lambda c: c.output_id != y_id)  # Y first: any order is valid
    taking = gc_leftovers.to_trash

    def take_while_a_task_commits(root, path, name):
        trash = taking(root, path, name)
        if name.startswith(y_id):
            commit(store, w["t1"], {"t0": w_id}, datetime.now(UTC).isoformat())
        return trash

    monkeypatch.setattr(gc_leftovers, "to_trash", take_while_a_task_commits)
    outcome = gc.collect(store, chosen)
    assert outcome.deleted == [y_id]
    assert store.lookup(w_id).done


@pytest.mark.parametrize("same_tick", [False, True], ids=["later", "within one tick"])
def test_an_output_built_again_where_gc_left_a_tombstone_keeps_its_inputs(tmp_path, same_tick):
    """t1 was taken by an earlier gc (a tombstone is left); after this gc's listing it
    is built again, reading t0: t0 stays, even when the build leaves its folder's time
    as it was (a file system whose clock ticks coarsely)."""
    coarse_clock(tmp_path, same_tick)
    store = OutputStore(str(tmp_path / "store"))
    pipe = load(chain(2, "x").bencode())
    t0 = commit(store, pipe["t0"], {}, OLD)
    t1 = commit(store, pipe["t1"], {"t0": t0}, OLD)
    assert gc.collect(store, gc.plan(store, {t0}, gc.parse_age("1d"))).deleted == [t1]
    chosen = gc.plan(store, set(), gc.parse_age("1d"))
    assert [c.output_id for c in chosen.reclaimable] == [t0]
    folder, before = Path(store.object_dir(t1).path), os.stat(store.object_dir(t1).path)
    assert commit(store, pipe["t1"], {"t0": t0}, datetime.now(UTC).isoformat()) == t1
    if same_tick:
        os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert store.lookup(t1).generation == 1  # after the tombstone, never 0 again
    outcome = gc.collect(store, chosen)
    assert outcome.deleted == []
    assert store.lookup(t0).done


def test_an_output_built_again_where_gc_left_a_tombstone_during_the_survey_keeps_its_inputs(
    tmp_path, monkeypatch
):
    """The same, with t1 built again while this gc surveys the store, just after its
    folder was read (as tombstones only) and before the survey ends: t0 stays."""
    store = OutputStore(str(tmp_path / "store"))
    pipe = load(chain(2, "x").bencode())
    t0 = commit(store, pipe["t0"], {}, OLD)
    t1 = commit(store, pipe["t1"], {"t0": t0}, OLD)
    assert gc.collect(store, gc.plan(store, {t0}, gc.parse_age("1d"))).deleted == [t1]
    surveyed = gc_index._surveyed

    def built_meanwhile(store, output_id, listing=None):
        entry = surveyed(store, output_id, listing)
        if output_id == t1:
            time.sleep(0.01)  # a later mtime, whatever the file system's granularity
            commit(store, pipe["t1"], {"t0": t0}, datetime.now(UTC).isoformat())
        return entry

    monkeypatch.setattr(gc_index, "_surveyed", built_meanwhile)
    chosen = gc.plan(store, set(), gc.parse_age("1d"))
    monkeypatch.setattr(gc_index, "_surveyed", surveyed)
    assert store.lookup(t1).generation == 1
    outcome = gc.collect(store, chosen)
    assert t0 not in outcome.deleted
    assert store.lookup(t0).done


@pytest.mark.parametrize("same_tick", [False, True], ids=["later", "within one tick"])
def test_an_output_whose_commit_gc_sees_half_done_keeps_its_inputs(
    tmp_path, monkeypatch, same_tick
):
    """A task commits Z, which read Y, while gc checks A, B and then Y: gc checks B after
    Z's commit made Z's folder and before it moved Z's generation in. Y stays, even
    when the move leaves the folder's time as it was (a clock that ticks coarsely)."""
    coarse_clock(tmp_path, same_tick)
    store = OutputStore(str(tmp_path / "store"))
    a, b, y = (commit(store, load(chain(1, t).bencode())["t0"], {}, OLD) for t in "aby")
    z = load(chain(1, "z").bencode())["t0"]
    chosen = gc.plan(store, set(), gc.parse_age("1d"))
    chosen.reclaimable.sort(key=lambda c: c.output_id == y)  # Y last: any order is valid
    objects, syncing = Path(store.root.path) / "objects", store_local.sync_dir
    folder_made, move_in, made = threading.Event(), threading.Event(), []

    def pausing(path):  # the commit syncs objects/ once Z's folder is made
        syncing(path)
        if threading.current_thread() is task and Path(path) == objects:
            made.append(os.stat(objects / z.output))
            folder_made.set()
            move_in.wait(timeout=60)

    def commits_z():
        commit(store, z, {"t0": y}, datetime.now(UTC).isoformat())

    task = threading.Thread(target=commits_z)
    checked = []

    def advance():  # after each output gc checked
        checked.append(1)
        if len(checked) == 1:  # A checked: Z's commit starts, and stops half way
            task.start()
            assert folder_made.wait(timeout=60)
        elif len(checked) == 2:  # B checked, with Z's folder empty: the commit ends
            move_in.set()
            task.join(timeout=60)
            if same_tick:
                os.utime(objects / z.output, ns=(made[0].st_atime_ns, made[0].st_mtime_ns))

    monkeypatch.setattr(store_local, "sync_dir", pausing)
    try:
        outcome = gc.collect(store, chosen, advance)
    finally:  # the task never waits on a gc that failed
        move_in.set()
    assert store.lookup(z.output).done
    assert store.lookup(y).done, "gc deleted an input of an output committed meanwhile"
    assert sorted(outcome.deleted) == sorted([a, b])
    assert whole(lineage(store, z.output))
