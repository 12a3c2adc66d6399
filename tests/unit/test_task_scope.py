"""A task process builds its own task alone: Airflow's task runner parses the DAG file
inside its parsing context (the dag_id and task_id it runs, also bound to its log
context), and the file's DAG then holds that one operator, the same as in the whole
DAG, rather than every task of the file. Elsewhere (the DAG processor, the plan task,
another DAG's task, a process the task started) the whole DAG."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog.contextvars
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


def built(module: Path, dag_id: str | None = None, task_id: str | None = None, logged=True):
    """The module's DAG as the task runner parses it for ``task_id`` of ``dag_id``:
    the task bound to its log context, then its parsing context set (``logged=False``:
    the context's variables alone, as a process the task started inherits them)."""
    bound = {"dag_id": dag_id, "task_id": task_id} if logged and dag_id else {}
    parsing = _airflow_parsing_context_manager(dag_id=dag_id, task_id=task_id)
    with structlog.contextvars.bound_contextvars(**bound), parsing:
        return loader.dag_from(str(module), module.with_suffix(".alamode").name)


def operator_dict(dag, task_id: str) -> dict:
    """The task as Airflow serializes it, without its edges (the DAG's)."""
    serialized = DagSerialization.to_dict(dag)["dag"]["tasks"]
    (task,) = [t["__var"] for t in serialized if t["__var"]["task_id"] == task_id]
    task.pop("downstream_task_ids", None)
    return task


@pytest.mark.parametrize("name", ["a", "b", "c", "d", "z"])
def test_a_task_process_builds_its_task_alone_as_the_whole_dag_has_it(diamonds, name):
    """Each task: a root (after the plan in the whole DAG), a copy of the first task
    built with its settings, and a task with settings of its own."""
    whole = built(diamonds)
    alone = built(diamonds, "diamonds", name)
    assert sorted(alone.task_dict) == [name]
    assert sorted(whole.task_dict) == ["a", "alamode_plan", "b", "c", "d", "z"]
    task, same = alone.task_dict[name], whole.task_dict[name]
    assert operator_dict(alone, name) == operator_dict(whole, name)
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
    scoped = built(diamonds, "diamonds", "d")
    assert sorted(scoped.task_dict) == ["d"]
    alone = scoped.task_dict["d"]
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


def test_a_process_the_task_started_builds_the_whole_dag(diamonds):
    """Airflow leaves its parsing context's variables set, and every process the task
    starts inherits them: an ``airflow tasks test diamonds b`` that a BashOperator runs
    in task d's process must still find task b."""
    assert len(built(diamonds, "diamonds", "d", logged=False).task_dict) == 6


def test_a_deployment_can_have_task_processes_build_the_whole_dag(diamonds, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__TASK_PROCESS_DAG", "whole")
    assert len(built(diamonds, "diamonds", "d").task_dict) == 6


def test_a_file_is_broken_in_a_task_process_as_everywhere(diamonds):
    """Another task's bad setting breaks the file for task d's process too: a queued
    task never runs from a file the DAG processor refuses."""
    pipe = Dag({"dag_id": "diamonds"})
    pipe.task("a", {"command": "echo a"}) >> pipe.task("d", {"command": "echo d"})
    pipe.meta["tasks"] = {"a": {"pool": 5}}
    pipe.save(diamonds.with_suffix(".alamode"))
    for dag in (built(diamonds), built(diamonds, "diamonds", "d")):
        assert dag.dag_id == "alamode_broken__diamonds"
        assert "meta.tasks.a.pool" in dag.description


def test_the_folder_loader_builds_the_task_alone_too(diamonds):
    """A file without its generated module, built by ``dags/alamode_dags.py``; the
    folder's other files are left alone."""
    diamonds.unlink()
    folder = diamonds.parent
    other = Dag({"dag_id": "other"})
    other.task("b", {"command": "echo other"})
    other.save(folder / "other.alamode")
    assert sorted(loader.load_dags(folder)) == ["diamonds", "other"]
    parsing = _airflow_parsing_context_manager(dag_id="diamonds", task_id="b")
    with structlog.contextvars.bound_contextvars(dag_id="diamonds", task_id="b"), parsing:
        dags = loader.load_dags(folder)
    assert sorted(dags) == ["diamonds"]
    assert sorted(dags["diamonds"].task_dict) == ["b"]


def test_a_task_process_warns_of_its_own_tasks_spec_keys_only(diamonds, caplog):
    """Each task's log says what its own spec still sets (``retries``, part of the
    output ID), not what every other task of the file does."""
    pipe = Dag({"dag_id": "diamonds"})
    for name in ("a", "d"):
        pipe.task(name, {"command": f"echo {name}", "retries": 2})
    pipe.save(diamonds.with_suffix(".alamode"))
    built(diamonds, "diamonds", "d")
    said = [r.getMessage() for r in caplog.records if "spec key 'retries'" in r.getMessage()]
    assert [message.split(": ", 1)[1][:9] for message in said] == ["task 'd':"]


def test_the_folder_loader_builds_the_task_alone_from_a_relative_folder(diamonds, monkeypatch):
    """``dags/alamode_dags.py`` imported as ``alamode_dags.py``: its folder is ``.``."""
    diamonds.unlink()
    monkeypatch.chdir(diamonds.parent)
    parsing = _airflow_parsing_context_manager(dag_id="diamonds", task_id="b")
    with structlog.contextvars.bound_contextvars(dag_id="diamonds", task_id="b"), parsing:
        dags = loader.load_dags(".")
    assert sorted(dags["diamonds"].task_dict) == ["b"]
