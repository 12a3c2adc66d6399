"""Execution settings on a real Airflow: operating a pipeline never looks like
changing it."""

from __future__ import annotations

from a_la_mode import Dag
from tests.airflow.conftest import executed, writer

SKIPPED = {"a": "skipped", "b": "skipped", "alamode_plan": "success"}


def pipeline(counter, **settings) -> Dag:
    dag = Dag({"dag_id": "operated", "defaults": {"retries": 1}})
    a = dag.task("a", writer(counter, "a"))
    a >> dag.task("b", writer(counter, "b", reads="a"), **settings)
    return dag


def ran_with(airflow, run_id: str) -> dict[str, tuple]:
    sql = (
        "select task_id, pool, queue, priority_weight, max_tries from task_instance"
        " where dag_id='operated' and run_id=?"
    )
    return {row[0]: row[1:] for row in airflow.query(sql, run_id)}


def test_changing_retries_pool_queue_and_priority_recomputes_nothing(airflow, counter):
    airflow.save(pipeline(counter), "operated")
    assert airflow.run("operated", "2026-01-01") == {
        "a": "success",
        "b": "success",
        "alamode_plan": "success",
    }
    assert executed(counter) == ["a", "b"]
    before = airflow.test_run("operated", "2026-01-02")
    assert before.states == SKIPPED
    assert ran_with(airflow, before.run_id)["b"] == ("default_pool", "default", 1, 1)

    operated = pipeline(counter, retries=3, pool="heavy", queue="gpu", priority_weight=7)
    airflow.save(operated, "operated")
    airflow.cli("pools", "set", "heavy", "1", "one at a time")
    after = airflow.test_run("operated", "2026-01-03")
    # Nothing ran again: every output ID is the one already recorded ...
    assert after.states == SKIPPED
    assert executed(counter) == ["a", "b"]
    # ... and the run is the new one: Airflow scheduled b with the new settings.
    assert ran_with(airflow, after.run_id)["b"] == ("heavy", "gpu", 7, 3)
