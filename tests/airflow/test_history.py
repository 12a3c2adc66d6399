"""Time and history on a real Airflow: partitioned outputs and forced rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a_la_mode import Dag
from alamode_airflow.store import OutputStore
from tests.airflow.conftest import executed, writer

DONE = {"alamode_plan": "success"}


def text(store: OutputStore, output_id: str, generation: int | None = None) -> str:
    return (Path(store.location(output_id, generation).path) / "out.txt").read_text()


def daily(counter) -> Dag:
    """raw is per interval (and so is report, downstream of it); lookup is not."""
    dag = Dag({"dag_id": "daily", "schedule": "@daily"})
    per_day = {**writer(counter, "raw-$ALAMODE_INTERVAL_START"), "partition": "interval"}
    raw = dag.task("raw", per_day)
    lookup = dag.task("lookup", writer(counter, "lookup"))
    report = dag.task("report", writer(counter, "report-{{ ds }}", reads="raw"))
    raw >> report
    lookup >> report
    return dag


def test_partitioned_tasks_get_one_output_per_interval(airflow, counter):
    airflow.save(daily(counter), "daily")
    first = airflow.run("daily", "2026-01-01")
    assert first == {**DONE, "raw": "success", "lookup": "success", "report": "success"}
    second = airflow.run("daily", "2026-01-02")
    assert second == {**DONE, "raw": "success", "lookup": "skipped", "report": "success"}
    again = airflow.run("daily", "2026-01-01")
    assert again == {**DONE, "raw": "skipped", "lookup": "skipped", "report": "skipped"}
    assert sorted(executed(counter)) == ["lookup", "raw", "raw", "report", "report"]

    store = OutputStore(str(airflow.store))
    reports = [
        json.loads((p / "0" / "record.json").read_text())
        for p in (airflow.store / "objects").iterdir()
        if json.loads((p / "0" / "record.json").read_text())["task"] == "report"
    ]
    assert len(reports) == 2
    contents = sorted(text(store, r["output_id"]) for r in reports)
    # dags test runs cover the period before their logical date.
    assert contents == [
        "raw-2025-12-31T00:00:00Z\nreport-2026-01-01\n",
        "raw-2026-01-01T00:00:00Z\nreport-2026-01-02\n",
    ]


@pytest.mark.parametrize("form", [True, False], ids=["form-field", "conf-only"])
def test_rebuild_keeps_the_old_output_and_downstream_reads_the_new(
    airflow, counter, tmp_path, form
):
    if not form:  # a DAG too large for the trigger form's field: conf still works
        airflow = type(airflow)(
            airflow.home,
            airflow.dags,
            extra_env=(("AIRFLOW__ALAMODE__REBUILD_FORM_MAX_TASKS", "0"),),
        )
    version = tmp_path / "version"
    version.write_text("v1")
    dag = Dag({"dag_id": "flaky_api"})
    fetch = dag.task(
        "fetch",
        {"command": f'echo fetch >> {counter}; cat {version} > "$ALAMODE_OUTPUT/out.txt"'},
    )
    fetch >> dag.task("report", writer(counter, "report", reads="fetch"))
    dag.task("other", writer(counter, "other"))
    airflow.save(dag, "flaky_api")
    airflow.run("flaky_api", "2026-01-01")

    version.write_text("v2")  # the upstream API now answers correctly
    states = airflow.run("flaky_api", "2026-01-02", conf={"rebuild": ["fetch"]})
    assert states == {**DONE, "fetch": "success", "report": "success", "other": "skipped"}
    assert executed(counter).count("fetch") == 2

    store = OutputStore(str(airflow.store))
    fetch_id = dag.encode()["tasks"]["fetch"]["output"]
    report_id = dag.encode()["tasks"]["report"]["output"]
    history = store.history(fetch_id)
    assert [h.record.generation for h in history] == [0, 1]
    assert text(store, fetch_id, 0) == "v1"
    assert text(store, fetch_id, 1) == "v2"
    assert text(store, report_id) == "v2report\n"
    assert history[1].record.rebuilt is True

    # A plain run afterwards skips everything: the latest generation is recorded.
    states = airflow.run("flaky_api", "2026-01-03")
    assert states == {**DONE, "fetch": "skipped", "report": "skipped", "other": "skipped"}
    assert executed(counter).count("fetch") == 2


def test_rebuild_of_an_unknown_task_fails_the_plan(airflow, counter):
    airflow.save(daily(counter), "daily")
    states = airflow.run("daily", "2026-01-01", ok=False, conf={"rebuild": ["nope"]})
    assert states["alamode_plan"] == "failed"
    assert "rebuild names unknown tasks: nope" in airflow.last_log
