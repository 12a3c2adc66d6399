"""Which tasks a run rebuilds, on real DAGs built by the factory: the plan's expansion
(the asked tasks and everything downstream) and each task's own answer from the small
plan it is handed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from a_la_mode import Dag, load
from alamode_airflow.factory import build_dag
from alamode_airflow.operators import PLAN_XCOM
from alamode_airflow.plan import PLAN_TASK
from alamode_airflow.runs import rebuilds_for


class TaskInstance:
    """What the plan task uses of Airflow's task instance: the XCom it pushes."""

    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value


def two_diamonds(tmp_path: Path):
    """a -> (b, c) -> d -> (e, f) -> g, and a lone task z."""
    dag = Dag({"dag_id": "diamonds"})
    a, b, c, d, e, f, g, _ = (dag.task(n, {"command": f"echo {n}"}) for n in "abcdefgz")
    a >> [b, c] >> d >> [e, f] >> g
    path = tmp_path / "diamonds.alamode"
    dag.save(path)
    return build_dag(load(path), path, storage_root=str(tmp_path / "store"))


def planned(dag, conf: dict) -> dict:
    """What the plan task of ``dag`` pushes for a run triggered with ``conf``."""
    ti = TaskInstance()
    run = SimpleNamespace(conf=conf)  # the DagRun's conf, as the trigger set it
    context = {"ti": ti, "run_id": "manual__1", "dag_run": run, "params": {}}
    dag.get_task(PLAN_TASK).execute(context)  # an empty store: nothing is skipped
    return ti.pushed[PLAN_XCOM]


@pytest.mark.parametrize(
    ("asked", "rebuilt"),
    [
        ([], ""),
        (["g"], "g"),
        (["b"], "bdefg"),
        (["e", "c"], "cdefg"),
        (["d"], "defg"),
        (["z"], "z"),
        (["a", "z"], "abcdefgz"),
        ("all", "abcdefgz"),
    ],
)
def test_a_rebuild_reaches_the_asked_tasks_and_everything_downstream(tmp_path, asked, rebuilt):
    dag = two_diamonds(tmp_path)
    plan = planned(dag, {"rebuild": asked})
    assert plan["rebuild"] == sorted(rebuilt)
    # Each task tells from the plan alone whether it rebuilds: the same set.
    mine = {name for name in "abcdefgz" if rebuilds_for(dag.get_task(name), plan)}
    assert mine == set(rebuilt)


def test_the_plan_passes_the_asked_names_not_the_whole_rebuild_set(tmp_path):
    dag = Dag({"dag_id": "chain"})
    last = dag.task("t0", {"command": "echo 0"})
    for n in range(1, 300):
        last = last >> dag.task(f"t{n}", {"command": f"echo {n}"})
    path = tmp_path / "chain.alamode"
    dag.save(path)
    built = build_dag(load(path), path, storage_root=str(tmp_path / "store"))
    assert planned(built, {"rebuild": "all"})["rebuild_asked"] == ["all"]
    assert planned(built, {"rebuild": ["t1", "t7"]})["rebuild_asked"] == ["t1", "t7"]
    plan = {"rebuild_asked": ["t7"]}
    assert rebuilds_for(built.get_task("t299"), plan) == {"t299"}
    assert rebuilds_for(built.get_task("t6"), plan) == set()


def test_a_task_handed_an_older_plan_reads_its_whole_rebuild_set(tmp_path):
    dag = two_diamonds(tmp_path)
    assert rebuilds_for(dag.get_task("d"), {"rebuild": ["d", "e"]}) == {"d", "e"}
    assert rebuilds_for(dag.get_task("d"), {}) == set()
