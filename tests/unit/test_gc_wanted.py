"""gc cannot lose what is wanted: the dags folder it trusts, the closure of what it
keeps, what changed between the listing and the deletion, and records it cannot read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a_la_mode import AlamodeError, load
from alamode_airflow import gc
from alamode_airflow.cli import main
from alamode_airflow.history import lineage
from tests.unit.test_gc import (
    OLD,
    chain,
    commit,
    held,
    lock_of,
    store_with_old_outputs,  # noqa: F401 (fixture "setup")
)

NOW = "2999-01-01T00:00:00+00:00"  # newer than any cut-off


def run_gc(store, dags, *extra: str) -> int:
    args = ["gc", "--dags-folder", str(dags), "--store", str(store.root.path), "--json"]
    return main([*args, "--older-than", "0", *extra])


def whole(node) -> bool:
    """Every output in a lineage tree has its record."""
    return node.record is not None and all(whole(n) for n in node.inputs.values())


# 1. The dags folder.


def test_an_empty_dags_folder_is_refused_unless_asked_for(setup, tmp_path, monkeypatch, capsys):
    store, _, _, old = setup
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(empty))
    assert run_gc(store, empty, "--yes") == 3
    error = capsys.readouterr().err
    assert str(empty) in error
    assert "no encoded files" in error
    assert all(store.lookup(t.output).done for t in old)
    assert run_gc(store, empty, "--any-dags-folder") == 0
    assert len(json.loads(capsys.readouterr().out)["reclaimable"]) == 6


def test_a_folder_other_than_airflows_dags_folder_is_refused(setup, tmp_path, monkeypatch, capsys):
    store, dags, current, _ = setup
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "old.alamode").write_bytes(chain(3, "old").bencode())
    monkeypatch.setenv("COLUMNS", "1000")  # the error on one line, whatever the terminal
    assert run_gc(store, other, "--yes") == 3
    error = capsys.readouterr().err
    assert str(other) in error
    assert "is not Airflow's dags folder" in error
    assert all(store.lookup(t.output).done for t in current)
    # The same folder by another path is Airflow's.
    (tmp_path / "link").symlink_to(dags)
    assert run_gc(store, tmp_path / "link") == 0
    capsys.readouterr()
    assert run_gc(store, other, "--any-dags-folder") == 0
    reclaimable = json.loads(capsys.readouterr().out)["reclaimable"]
    assert {row["output_id"] for row in reclaimable} == {t.output for t in current}


def test_without_dags_folder_gc_reads_airflows(setup, capsys):
    store, _, _, old = setup
    assert main(["gc", "--store", str(store.root.path), "--json", "--older-than", "0"]) == 0
    reclaimable = json.loads(capsys.readouterr().out)["reclaimable"]
    assert {row["output_id"] for row in reclaimable} == {t.output for t in old}


def test_the_api_refuses_an_empty_folder_too(tmp_path):
    with pytest.raises(AlamodeError, match=r"nowhere: is not a folder"):
        gc.roots(tmp_path / "nowhere")


# 2. Closures.


def test_a_pin_keeps_the_outputs_its_output_was_made_from(setup, capsys):
    store, dags, _, old = setup
    gc.pin(store, old["t2"].output)
    assert run_gc(store, dags, "--yes") == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == []
    assert whole(lineage(store, old["t2"].output))


def test_a_root_keeps_what_any_generation_of_its_record_names(setup, capsys):
    store, dags, current, old = setup
    # A second generation of the current t0, made from an old output.
    commit(store, current["t0"], {"seed": old["t2"].output}, OLD)
    assert run_gc(store, dags, "--yes") == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == []
    assert whole(lineage(store, old["t2"].output))


def test_a_partition_of_a_root_keeps_the_partitions_it_read(tmp_path, monkeypatch, capsys):
    store = gc.OutputStore(str(tmp_path / "store"))
    dags = tmp_path / "dags"
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    current, old = chain(1, "new"), chain(2, "old")
    current.save(dags / "current.alamode")
    new, was = load(current.bencode()), load(old.bencode())
    day = ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    first = commit(store, was["t0"], {}, OLD, interval=day)
    read = commit(store, was["t1"], {"up": first}, OLD, interval=day)
    mine = commit(store, new["t0"], {"up": read}, OLD, interval=day)
    unread = commit(store, was["t1"], {}, OLD, interval=("2023-01-01T00:00:00Z", day[0]))
    assert run_gc(store, dags, "--yes") == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == [unread]
    assert whole(lineage(store, mine))


def test_an_output_left_in_use_keeps_its_inputs(setup):
    store, dags, _, old = setup
    chosen = gc.plan(store, gc.roots(dags), gc.parse_age("0"))
    assert [c.task for c in chosen.reclaimable] == ["t2", "t1", "t0"]  # consumers first
    with held(lock_of(store, old["t2"].output), shared=True):
        outcome = gc.collect(store, chosen)
    assert outcome.busy == [old["t2"].output]
    assert outcome.deleted == []
    assert whole(lineage(store, old["t2"].output))


# 3. Between the listing and the deletion.


def test_a_pin_made_after_the_listing_is_honoured_with_its_closure(setup):
    store, dags, _, old = setup
    chosen = gc.plan(store, gc.roots(dags), gc.parse_age("0"))
    # After the listing: a new output made from the old t1 is committed, and pinned.
    extra = load(chain(1, "extra").bencode())["t0"]
    made = commit(store, extra, {"t1": old["t1"].output}, OLD)
    gc.pin(store, made)
    outcome = gc.collect(store, chosen)
    assert outcome.deleted == [old["t2"].output]
    assert {oid for oid, _ in outcome.spared} == {old["t1"].output, old["t0"].output}
    assert whole(lineage(store, made))


def test_an_output_committed_after_the_listing_keeps_what_it_read(setup):
    store, dags, _, old = setup
    chosen = gc.plan(store, gc.roots(dags), gc.parse_age("30d"))
    extra = load(chain(1, "extra").bencode())["t0"]
    made = commit(store, extra, {"t1": old["t1"].output}, NOW)  # not pinned, but new
    outcome = gc.collect(store, chosen)
    assert outcome.deleted == [old["t2"].output]
    assert whole(lineage(store, made))


def test_a_pin_or_a_new_generation_after_the_listing_spares_the_output(setup):
    store, dags, _, old = setup
    chosen = gc.plan(store, gc.roots(dags), gc.parse_age("30d"))
    gc.pin(store, old["t1"].output)
    commit(store, old["t2"], {"t1": old["t1"].output}, NOW)  # rebuilt just now
    outcome = gc.collect(store, chosen)
    assert outcome.deleted == []
    reasons = dict(outcome.spared)
    assert "newer than the cut-off" in reasons[old["t2"].output]
    assert "pinned" in reasons[old["t1"].output]
    assert all(store.lookup(t.output).done for t in old)


def test_a_record_damaged_after_the_listing_spares_the_output(setup):
    store, dags, _, old = setup
    chosen = gc.plan(store, gc.roots(dags), gc.parse_age("0"))
    record = Path(store.object_dir(old["t0"].output, 0).path) / "record.json"
    record.write_text("{")
    outcome = gc.collect(store, chosen)
    assert sorted(outcome.deleted) == sorted([old["t2"].output, old["t1"].output])
    assert "unreadable" in dict(outcome.spared)[old["t0"].output]


# 4. Records gc cannot read.


def test_outputs_gc_cannot_read_are_kept_and_reported(setup, capsys):
    store, dags, _, old = setup
    objects = Path(store.root.path) / "objects"
    newer = objects / old["t0"].output / "0" / "record.json"
    newer.write_text(json.dumps({**json.loads(newer.read_text()), "format": 9}))
    (objects / old["t1"].output / "0" / "record.json").write_text("{not json")
    (objects / old["t2"].output / "1" / "data").mkdir(parents=True)  # no record
    (objects / "notes").mkdir()
    assert run_gc(store, dags, "--yes") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reclaimable"] == []
    assert report["deleted"] == []
    reasons = {row["path"]: row["reason"] for row in report["unknown"]}
    assert "unknown record format 9" in reasons[f"objects/{old['t0'].output}"]
    assert "unreadable" in reasons[f"objects/{old['t1'].output}"]
    assert "no record" in reasons[f"objects/{old['t2'].output}"]
    assert reasons["objects/notes"] == "not an output ID"
    assert all(Path(store.object_dir(t.output).path).is_dir() for t in old)
    args = ["gc", "--dags-folder", str(dags), "--store", str(store.root.path)]
    assert main([*args, "--older-than", "0"]) == 0
    table = capsys.readouterr().out
    assert "cannot be read" in table
    assert "unknown record format 9" in table


def test_an_unreadable_record_still_keeps_the_inputs_it_names(setup, capsys):
    store, dags, _, old = setup
    path = Path(store.object_dir(old["t1"].output, 0).path) / "record.json"
    record = json.loads(path.read_text())
    inputs = {name: {"output_id": oid, "generation": 0} for name, oid in record["inputs"].items()}
    path.write_text(json.dumps({**record, "format": 9, "inputs": inputs}))
    assert run_gc(store, dags, "--yes") == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == [old["t2"].output]
    assert store.lookup(old["t0"].output).done


def test_pinning_a_partitioned_tasks_file_id_keeps_its_partitions(setup, capsys):
    store, dags, _, old = setup
    day = ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    first = commit(store, old["t0"], {}, OLD, interval=day)
    second = commit(store, old["t1"], {"t0": first}, OLD, interval=day)
    gc.pin(store, old["t1"].output)  # the task's ID in the file, not one partition's
    assert run_gc(store, dags, "--yes") == 0
    deleted = json.loads(capsys.readouterr().out)["deleted"]
    assert first not in deleted
    assert second not in deleted
    assert whole(lineage(store, second))


def test_inputs_named_with_their_generation_are_kept_too(setup, capsys):
    store, dags, _, old = setup
    path = Path(store.object_dir(old["t2"].output, 0).path) / "record.json"
    record = json.loads(path.read_text())
    record["inputs"] = {"t1": {"output_id": old["t1"].output, "generation": 0}}
    path.write_text(json.dumps(record))
    gc.pin(store, old["t2"].output)
    assert run_gc(store, dags, "--yes") == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == []


def test_a_record_that_cannot_be_opened_is_kept_and_reported(setup, capsys):
    store, dags, _, old = setup
    (Path(store.object_dir(old["t0"].output).path) / "1" / "record.json").mkdir(parents=True)
    assert run_gc(store, dags, "--yes") == 0
    report = json.loads(capsys.readouterr().out)
    assert old["t0"].output not in report["deleted"]
    assert "Is a directory" in report["unknown"][0]["reason"]
