"""A task process builds its own task alone: Airflow's task runner parses the DAG file
inside its parsing context (the dag_id and task_id it runs), and the file's DAG then
holds that one operator, the same as in the whole DAG, rather than every task of the
file. Elsewhere (the DAG processor, the plan task, another DAG's task) the whole DAG."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.definitions._internal.dag_parsing_context import (
    _airflow_parsing_context_manager,  # what the task runner parses in
)
from airflow.serialization.serialized_objects import DagSerialization

from a_la_mode import Dag, load
from alamode_airflow import loader
from alamode_airflow.dag_module import write_module
from alamode_airflow.plan import PLAN_TASK
from alamode_airflow.runs import rebuilds_for

CONTEXT = ("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "_AIRFLOW_PARSING_CONTEXT_TASK_ID")


@pytest.fixture(autouse=True)
def no_parsing_context(monkeypatch) -> None:
    """Airflow's context manager leaves its variables set where none were: each test
    starts without them, and they are gone after it."""
    for name in CONTEXT:
        monkeypatch.setenv(name, "")  # what teardown restores: none
        monkeypatch.delenv(name)


@pytest.fixture
def diamonds(tmp_path, monkeypatch) -> Path:
    """a -> (b, c) -> d, and a lone task z, with file defaults and a task's own
    settings; its generated module in a dags folder."""
    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    pipe = Dag({"dag_id": "diamonds", "schedule": "@daily"})
    pipe.meta["defaults"] = {"retries": 2, "pool": "db"}
    a, b, c, d, _ = (pipe.task(n, {"command": f"echo {n}"}) for n in "abcdz")
    d.settings.update(pool="big", doc_md="Joins *both*.")
    a >> [b, c] >> d
    path = pipe.save(folder / "diamonds.alamode")
    return write_module(path, load(path))


def built(module: Path, dag_id: str | None = None, task_id: str | None = None):
    with _airflow_parsing_context_manager(dag_id=dag_id, task_id=task_id):
        return loader.dag_from(str(module), "diamonds.alamode")


def operator_dict(dag, task_id: str) -> dict:
    """The task as Airflow serializes it, without its edges (the DAG's)."""
    serialized = DagSerialization.to_dict(dag)["dag"]["tasks"]
    (task,) = [t["__var"] for t in serialized if t["__var"]["task_id"] == task_id]
    task.pop("downstream_task_ids", None)
    return task


def test_a_task_process_builds_its_task_alone_as_the_whole_dag_has_it(diamonds):
    whole = built(diamonds)
    alone = built(diamonds, "diamonds", "d")
    assert sorted(alone.task_dict) == ["d"]
    assert sorted(whole.task_dict) == ["a", "alamode_plan", "b", "c", "d", "z"]
    task, same = alone.task_dict["d"], whole.task_dict["d"]
    assert operator_dict(alone, "d") == operator_dict(whole, "d")
    for engine in ("output_id", "inputs", "command", "cwd", "env", "storage_root"):
        assert getattr(task, engine) == getattr(same, engine)
    assert task.preimage_source() == same.preimage_source()
    assert (task.pool, task.retries, task.doc_md) == (same.pool, same.retries, same.doc_md)
    assert alone.params.dump() == whole.params.dump()
    assert (alone.schedule, alone.fileloc) == (whole.schedule, whole.fileloc)


@pytest.mark.parametrize(
    ("asked", "rebuilds"), [(["a"], True), (["b"], True), (["d"], True), (["z"], False)]
)
def test_a_task_built_alone_still_knows_what_it_is_downstream_of(diamonds, asked, rebuilds):
    """A rebuild of ``a`` reaches ``d`` (through b and c), though neither is built."""
    alone = built(diamonds, "diamonds", "d").task_dict["d"]
    whole = built(diamonds).task_dict["d"]
    plan = {"rebuild_asked": asked}
    assert rebuilds_for(alone, plan) == rebuilds_for(whole, plan) == ({"d"} if rebuilds else set())


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [
        ("diamonds", PLAN_TASK),  # the plan looks up every output
        ("other", "d"),  # another DAG's task
        ("diamonds", "gone"),  # no such task: Airflow says so, of the whole DAG
        ("diamonds", None),  # a parse for the DAG, not for one task
    ],
)
def test_every_other_parse_builds_the_whole_dag(diamonds, dag_id, task_id):
    assert len(built(diamonds, dag_id, task_id).task_dict) == 6
