"""gc reclaims what dead attempts, old quarantines and vanished outputs leave behind,
never anything live, and deletes read-only committed folders as any user."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import pytest

from a_la_mode import load
from alamode_airflow import gc
from alamode_airflow.cli import main
from alamode_airflow.store import OutputStore
from tests.unit.storefill import produce
from tests.unit.test_gc import (
    OLD,
    built,
    chain,
    held,
    lock_of,
    store_with_old_outputs,  # noqa: F401 (fixture "setup")
)


def run_gc(capsys, store, dags, *extra: str) -> dict:
    args = ["gc", "--dags-folder", str(dags), "--store", str(store.root.path), "--json"]
    assert main([*args, *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def leftovers(setup):
    """A store with one of each leftover, and the live things beside them gc must
    leave alone: a producing attempt's staging folder and a held lock file."""
    store, dags, _, old = setup
    root = Path(store.root.path)
    dead, live = store.stage(old["t0"].output), store.stage(old["t1"].output)
    (dead / "data" / "half.txt").write_text("killed half way")
    generation = Path(store.object_dir(old["t2"].output, 0).path)
    os.utime(generation, (0, 0))  # built long ago
    store.quarantine(old["t2"].output, 0)  # and quarantined just now
    gone = "ab" * 32
    lock_of(store, gone).touch()  # an output gc deleted earlier, or never committed
    (root / "trash" / "x.1234").mkdir(parents=True)  # an interrupted gc's
    (root / "trash" / "x.1234" / "f").write_text("x")
    return store, dags, root, dead, live, gone


def test_dry_run_lists_dead_leftovers_and_touches_nothing(leftovers, capsys):
    store, dags, root, dead, live, gone = leftovers
    with held(lock_of(store, live.name.split(".")[0])):  # an attempt producing
        report = run_gc(capsys, store, dags, "--older-than", "30d")
    kinds = {row["path"]: row["kind"] for row in report["leftovers"]}
    assert kinds == {
        f"staging/{dead.name}": "staging",
        f"locks/{gone}.lock": "lock",
        "trash/x.1234": "trash",
    }  # the quarantined generation is kept for inspection: it went there just now
    assert dead.is_dir()
    assert live.is_dir()
    assert lock_of(store, gone).exists()
    assert (root / "trash" / "x.1234").is_dir()
    assert len(list((root / "quarantine").iterdir())) == 1


def test_yes_reclaims_leftovers_but_nothing_live(leftovers, capsys):
    store, dags, root, dead, live, gone = leftovers
    held_lock = "cd" * 32
    with held(lock_of(store, live.name.split(".")[0])), held(lock_of(store, held_lock)):
        report = run_gc(capsys, store, dags, "--older-than", "0", "--yes")
    assert not dead.exists()
    assert live.is_dir()  # its attempt still runs
    assert not lock_of(store, gone).exists()
    assert lock_of(store, held_lock).exists()  # someone holds it
    assert list((root / "quarantine").iterdir()) == []  # older than a cut-off of now
    assert list((root / "trash").iterdir()) == []
    assert f"staging/{dead.name}" in report["leftovers_deleted"]
    assert f"locks/{held_lock}.lock" not in report["leftovers_deleted"]
    # Lock files of outputs still in objects/ stay; those of deleted outputs go.
    current = load(chain(3, "new").bencode())
    assert all(store.lookup(t.output).done for t in current)
    locks = {p.name for p in (root / "locks").iterdir()}
    assert not any(f"{oid}.lock" in locks for oid in report["deleted"])


def test_the_lock_file_of_an_output_in_the_store_stays(setup):
    store, dags, _, old = setup
    gc.pin(store, old["t0"].output)
    lock_of(store, old["t0"].output).touch()
    outcome = gc.collect(store, gc.plan(store, gc.roots(dags), gc.parse_age("0")))
    assert old["t1"].output in outcome.deleted
    assert lock_of(store, old["t0"].output).exists()
    assert not lock_of(store, old["t1"].output).exists()


def test_read_only_outputs_are_deleted_as_any_user(tmp_path):
    """Committed folders may be made read-only (folders 0555, files 0444): deleting
    them needs each folder made writable first, which root does not need."""
    base = Path(tempfile.mkdtemp(prefix="alamode-gc-"))  # reachable by any user
    try:
        os.chmod(base, 0o755)
        store = OutputStore(str(base / "store"))
        for batch in range(2):
            produce(store, load(chain(2, f"ro{batch}").bencode()), "run", end=OLD)
        (Path(store.root.path) / "staging").mkdir(exist_ok=True)
        _read_only(Path(store.root.path) / "objects")
        _collect_as_user(store)
        assert built(Path(store.root.path, "objects")) == []
        assert list(Path(store.root.path, "trash").iterdir()) == []
    finally:
        for folder, _, _ in os.walk(base):
            os.chmod(folder, 0o755)
        shutil.rmtree(base)


def _read_only(objects: Path) -> None:
    """Every generation read-only; the output folders of every other output too."""
    for index, output in enumerate(sorted(objects.iterdir())):
        for folder, _, files in os.walk(output / "0", topdown=False):
            for name in files:
                os.chmod(Path(folder, name), 0o444)
            os.chmod(folder, 0o555)
        if index % 2:
            os.chmod(output, 0o555)


def _collect_as_user(store: OutputStore) -> None:
    """Plan and collect everything in a process of an ordinary user (``nobody`` when
    the tests run as root, whom permission bits do not stop)."""
    root = Path(store.root.path)
    if os.geteuid() != 0:
        gc.collect(store, gc.plan(store, set(), gc.parse_age("0")))
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, 65534, 65534, follow_symlinks=False)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child)
        status = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            gc.collect(store, gc.plan(store, set(), gc.parse_age("0")))
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            status = 1
        os._exit(status)
    os.close(write)
    with os.fdopen(read) as errors:
        failure = errors.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, failure
