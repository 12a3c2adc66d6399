"""``alamode explain`` through the store's task markers: it compares a task with the
earlier outputs of the same task of the same DAG, and reads only their records;
``alamode index`` writes the markers of outputs committed without them."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil

import pytest

from a_la_mode import Dag, load
from alamode_airflow import gc
from alamode_airflow.cli import main
from alamode_airflow.history import explain
from alamode_airflow.manifests import manifest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import Committed, OutputStore
from alamode_airflow.task_index import UNINDEXED, Rebuilt, marker, rebuild, task_records
from tests.unit.counting import requests_sent


class CountingStore(OutputStore):
    """A real local store that counts the records it reads."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: list[str] = []
        read = self.backend.read_record

        def counted(output_id: str, generation: int, etag: str | None = None) -> str:
            # Every record read, by a lookup, a history or the task index, comes here.
            self.reads.append(output_id)
            return read(output_id, generation, etag)

        self.backend.read_record = counted


def commit(store: OutputStore, pipeline, dag_id: str, run_id: str) -> list[SuccessRecord]:
    """Commit every task's output as a run of ``dag_id`` does; the records."""
    records = []
    for task in pipeline:
        staging = store.stage(task.output)
        (staging / "data" / "out.txt").write_text(f"{dag_id} {task.name} {run_id}")
        record = SuccessRecord(
            output_id=task.output,
            dag_id=dag_id,
            task=task.name,
            run_id=run_id,
            try_number=1,
            start=f"{run_id}T00:00:00+00:00",
            end=f"{run_id}T00:00:01+00:00",
            duration_s=1.0,
            command=task.spec["command"],
            image=None,
            sha=None,
            inputs={name: pipeline[name].output for name in task.inputs},
            input_generations={name: 0 for name in task.inputs},
            preimage_b64=base64.b64encode(task.preimage()).decode(),
            host="test",
            data_path=store.data_path(staging),
            manifest=manifest(staging / "data"),
        )
        store.commit(staging, record)
        records.append(record)
    return records


def single(dag_id: str | None, command: str):
    dag = Dag({"dag_id": dag_id} if dag_id else {})
    dag.task("clean", {"command": command})
    return dag


@pytest.fixture
def store(tmp_path) -> CountingStore:
    return CountingStore(str(tmp_path / "store"))


def test_explain_compares_with_the_same_dags_task_not_a_namesake_in_another_dag(
    store, tmp_path, capsys
):
    commit(store, load(single("sales", "clean.py --v1").bencode()), "sales", "2026-01-01")
    # Another team's DAG has a task of the same name, closer to the new spec.
    commit(store, load(single("hr", "clean.py --v2").bencode()), "hr", "2026-01-02")
    changed = single("sales", "clean.py --v2 --fast")
    result = explain(load(changed.bencode()), "clean", store)
    assert (result.nearest.dag_id, result.reasons()) == (
        "sales",
        ["spec command: 'clean.py --v1' -> 'clean.py --v2 --fast'"],
    )
    # The command line names the DAG as the engine does: the file's name without meta.
    path = tmp_path / "sales.alamode"
    single(None, "clean.py --v2 --fast").save(path)
    assert main(["explain", str(path), "clean", "--store", store.url, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["reasons"] == ["spec command: 'clean.py --v1' -> 'clean.py --v2 --fast'"]


def test_explain_reads_only_the_records_of_that_task(store):
    for day in range(1, 31):
        spec = f"clean.py --day {day}"
        commit(store, load(single("other", spec).bencode()), "other", f"2026-01-{day:02d}")
    v1, v2 = (load(single("sales", f"clean.py --{v}").bencode()) for v in ("v1", "v2"))
    commit(store, v1, "sales", "2026-02-01")
    commit(store, v2, "sales", "2026-02-02")
    store.reads.clear()
    result = explain(load(single("sales", "clean.py --v3").bencode()), "clean", store)
    assert result.nearest.run_id == "2026-02-02"
    assert sorted(store.reads) == sorted([v1["clean"].output, v2["clean"].output])


def test_a_freshly_committed_output_is_found_without_reading_the_store(store):
    """The first explain on a store of many outputs: the one just committed for the
    task is found, and no other output's record is read."""
    for day in range(1, 31):
        spec = f"clean.py --day {day}"
        commit(store, load(single("other", spec).bencode()), "other", f"2026-01-{day:02d}")
    v1 = load(single("sales", "clean.py --v1").bencode())
    commit(store, v1, "sales", "2026-02-01")
    store.reads.clear()
    result = explain(load(single("sales", "clean.py --v2").bencode()), "clean", store)
    assert result.nearest.output_id == v1["clean"].output
    assert store.reads == [v1["clean"].output]


@pytest.mark.parametrize(
    ("dag_id", "task"),
    [
        ("team.sales-v2", "group.clean"),  # task group ids hold dots
        ("..", "-rf"),
        (".hidden", "..."),
        ("d" * 250, "t" * 250),  # the longest ids Airflow allows
    ],
)
def test_any_dag_and_task_id_is_a_safe_marker_and_found_again(store, tmp_path, dag_id, task):
    dag = Dag({"dag_id": dag_id})
    dag.task(task, {"command": "clean.py --v1"})
    [record] = commit(store, load(dag.bencode()), dag_id, "2026-01-01")
    relative = marker(record)
    parts = relative.split("/")
    assert (parts[0], len(parts)) == ("tasks", 4)
    assert all(0 < len(part) <= 105 and part.strip(".") for part in parts)  # no . nor ..
    assert (tmp_path / "store" / relative).is_file()
    assert [r.output_id for r in task_records(store, task, dag_id)] == [record.output_id]
    assert [r.output_id for r in task_records(store, task)] == [record.output_id]
    assert task_records(store, task, dag_id + "x") == []


def test_a_retry_that_finds_its_output_committed_writes_the_marker_again(store, tmp_path):
    """A worker killed between the record and its marker: the retry's commit finds the
    generation committed, and the marker is written then."""
    [record] = commit(store, load(single("sales", "clean.py --v1").bencode()), "sales", "d1")
    (tmp_path / "store" / marker(record)).unlink()
    staging = store.stage(record.output_id)
    again = dataclasses.replace(record, run_id="d1-retry", data_path=store.data_path(staging))
    assert store.commit(staging, again) is Committed.ALREADY
    assert (tmp_path / "store" / marker(record)).is_file()
    assert [r.run_id for r in task_records(store, "clean", "sales")] == ["d1"]


def test_gc_takes_the_markers_and_a_marker_without_its_record_is_skipped(store, tmp_path):
    v1, v2, v3 = (load(single("sales", f"clean.py --{v}").bencode()) for v in ("v1", "v2", "v3"))
    [first] = commit(store, v1, "sales", "2026-01-01")
    [second] = commit(store, v2, "sales", "2026-01-02")
    [third] = commit(store, v3, "sales", "2026-01-03")
    chosen = gc.plan(store, {v2["clean"].output, v3["clean"].output}, gc.parse_age("0"))
    assert gc.collect(store, chosen).deleted == [first.output_id]
    assert not (tmp_path / "store" / marker(first)).exists()
    # Removed otherwise (an object store's lifecycle rule): the marker stays, unread.
    shutil.rmtree(tmp_path / "store/objects" / second.output_id)
    assert (tmp_path / "store" / marker(second)).exists()
    result = explain(load(single("sales", "clean.py --v4").bencode()), "clean", store)
    assert result.nearest.output_id == third.output_id
    assert [r.output_id for r in task_records(store, "clean", "sales")] == [third.output_id]
    assert rebuild(store).removed == 1  # alamode index takes the stray marker
    assert not (tmp_path / "store" / marker(second)).exists()


def test_alamode_index_writes_the_markers_of_a_store_filled_before_them(store, tmp_path, capsys):
    """Outputs committed by an earlier version (no markers): explain says the store has
    no index; ``alamode index`` reads every record once, and explain finds them."""
    v1 = load(single("sales", "clean.py --v1").bencode())
    [record] = commit(store, v1, "sales", "2026-01-01")
    commit(store, load(single("hr", "clean.py --v1 -x").bencode()), "hr", "2026-01-02")
    shutil.rmtree(tmp_path / "store/tasks")  # as an earlier version left the store
    path = tmp_path / "sales.alamode"
    single("sales", "clean.py --v2").save(path)
    assert main(["explain", str(path), "clean", "--store", store.url, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["verdict"], printed["note"]) == ("never built", UNINDEXED)
    assert main(["index", "--store", store.url]) == 0
    assert "2 records: 2 task markers written, 0 that named nothing removed" in (
        capsys.readouterr().out
    )
    assert main(["explain", str(path), "clean", "--store", store.url, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["nearest"], printed["note"]) == (record.output_id, None)
    assert rebuild(store) == Rebuilt(records=2, written=0, removed=0)  # once is enough


def test_the_markers_of_an_object_store_are_in_its_bucket(server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALAMODE_INDEX_S3", server.connection())
    # A connection of its own: clients are cached by connection id.
    bucket = OutputStore("s3://alamode-outputs/store", conn_id="alamode_index_s3")
    [sales] = commit(bucket, load(single("sales", "clean.py --v1").bencode()), "sales", "d1")
    [hr] = commit(bucket, load(single("hr", "clean.py --v2").bencode()), "hr", "d2")
    assert server.keys("store/tasks") == sorted(f"store/{marker(r)}" for r in (sales, hr))
    result = explain(load(single("sales", "clean.py --v2 -x").bencode()), "clean", bucket)
    assert result.nearest.dag_id == "sales"
    server.client().delete_object(Bucket=server.bucket, Key=f"store/{marker(sales)}")
    stray = f"store/tasks/clean/sales/{'0' * 64}.0"
    server.client().put_object(Bucket=server.bucket, Key=stray, Body=b"")
    assert task_records(bucket, "clean", "sales") == []
    assert rebuild(bucket) == Rebuilt(records=2, written=1, removed=1)
    assert server.keys("store/tasks") == sorted(f"store/{marker(r)}" for r in (sales, hr))
    again = explain(load(single("sales", "clean.py --v3").bencode()), "clean", bucket)
    assert again.nearest.run_id == "d1"


def test_alamode_index_on_an_object_store_lists_outputs_together(server, monkeypatch):
    """A pass over a bucket of many outputs costs a read per record and a few pages of
    keys, not a listing per output as well."""
    monkeypatch.setenv("AIRFLOW_CONN_ALAMODE_INDEX_MANY", server.connection())
    bucket = OutputStore("s3://alamode-outputs/many", conn_id="alamode_index_many")
    dag = Dag({"dag_id": "many"})
    for i in range(120):
        dag.task(f"t{i}", {"command": f"echo {i}"})
    commit(bucket, load(dag.bencode()), "many", "d1")
    with requests_sent(bucket.root.fs) as sent:
        assert rebuild(bucket) == Rebuilt(records=120, written=0, removed=0)
    reads = [url for method, url in sent if url.endswith("record.json")]
    assert len(reads) == 120
    assert len(sent) - len(reads) <= 10, "\n".join(f"{m} {u}" for m, u in sent)
