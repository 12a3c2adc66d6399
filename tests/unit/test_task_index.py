"""``alamode explain`` through the store's task index: it compares a task with the
earlier outputs of the same task of the same DAG, and reads only their records."""

from __future__ import annotations

import base64
import json
import os
import shutil

import pytest

from a_la_mode import Dag, load
from alamode_airflow.cli import main
from alamode_airflow.history import Verdict, explain
from alamode_airflow.manifests import manifest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import OutputStore
from alamode_airflow.task_index import INDEX, task_index


class CountingStore(OutputStore):
    """A real local store that counts the records it reads."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def _read(self, output_id, generation, keys):
        # Every record read, by a lookup, a history or ``read``, goes through here.
        self.reads.append(output_id)
        return super()._read(output_id, generation, keys)


def commit(store: OutputStore, pipeline, dag_id: str, run_id: str) -> None:
    """Commit every task's output as a run of ``dag_id`` does."""
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
    task_index(store)  # the first use reads every record once
    commit(store, v2, "sales", "2026-02-02")
    store.reads.clear()
    result = explain(load(single("sales", "clean.py --v3").bencode()), "clean", store)
    assert result.nearest.run_id == "2026-02-02"
    # v2's record once for the index, then the task's two outputs; no other DAG's.
    assert sorted(store.reads) == sorted([v1["clean"].output] + [v2["clean"].output] * 2)


def test_the_index_follows_gc_and_survives_damage(store, tmp_path):
    first = load(single("sales", "clean.py --v1").bencode())
    commit(store, first, "sales", "2026-01-01")
    assert task_index(store).outputs("clean", "sales") == {first["clean"].output}
    shutil.rmtree(tmp_path / "store/objects" / first["clean"].output)  # as gc takes it
    assert task_index(store).outputs("clean", "sales") == set()
    commit(store, first, "sales", "2026-01-02")
    (tmp_path / "store").joinpath(*INDEX).write_text("{not json")
    assert task_index(store).outputs("clean", "sales") == {first["clean"].output}
    result = explain(load(single("sales", "clean.py --v2").bencode()), "clean", store)
    assert result.verdict is Verdict.CHANGED


def test_explain_on_an_object_store_keeps_its_index_in_the_bucket(tmp_path, monkeypatch):
    from loopback.servers import s3_server

    (tmp_path / "s3").mkdir()
    with s3_server(tmp_path / "s3") as server:
        monkeypatch.setenv("AIRFLOW_CONN_ALAMODE_INDEX_S3", server.connection())
        bucket = OutputStore(
            "s3://alamode-outputs/store", conn_id="alamode_index_s3"
        )  # its own: clients are cached by id
        commit(bucket, load(single("sales", "clean.py --v1").bencode()), "sales", "2026-01-01")
        commit(bucket, load(single("hr", "clean.py --v2").bencode()), "hr", "2026-01-02")
        result = explain(load(single("sales", "clean.py --v2 -x").bencode()), "clean", bucket)
        assert result.nearest.dag_id == "sales"
        assert server.keys("store/index") == ["store/index/tasks.json"]
        commit(bucket, load(single("sales", "clean.py --v4").bencode()), "sales", "2026-01-04")
        again = explain(load(single("sales", "clean.py --v5").bencode()), "clean", bucket)
        assert again.nearest.run_id == "2026-01-04"


def test_an_unchanged_objects_folder_is_not_listed_again_and_a_commit_is_seen(store, tmp_path):
    v1, v2 = (load(single("sales", f"clean.py --{v}").bencode()) for v in ("v1", "v2"))
    commit(store, v1, "sales", "2026-01-01")
    objects = tmp_path / "store/objects"
    os.utime(objects, ns=(10**18, 10**18))  # listed long after its last change
    assert task_index(store).stamp == 10**18
    shutil.rmtree(objects / v1["clean"].output)
    os.utime(objects, ns=(10**18, 10**18))  # a change the folder's mtime does not show
    assert task_index(store).outputs("clean", "sales") == {v1["clean"].output}
    commit(store, v2, "sales", "2026-01-02")  # moves the mtime: listed again
    assert task_index(store).outputs("clean", "sales") == {v2["clean"].output}
