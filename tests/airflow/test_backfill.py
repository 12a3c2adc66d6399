"""Backfills through the real ``airflow backfill create`` CLI, executed by a real
scheduler (LocalExecutor) with its api-server and dag-processor on loopback."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from a_la_mode import Dag
from alamode_airflow.airflow_cli import AirflowHome
from alamode_airflow.history import records
from alamode_airflow.loopback.local import (
    free_port,
    service_env,
    services,
    wait_backfill,
    wait_registered,
)
from alamode_airflow.store import OutputStore
from tests.airflow.conftest import LOADER

pytestmark = pytest.mark.slow


def daily(counter) -> Dag:
    dag = Dag({"dag_id": "daily", "schedule": "@daily", "start_date": "2026-01-01"})
    log = f'echo "$ALAMODE_TASK $ALAMODE_INTERVAL_START" >> {counter}'
    raw = dag.task("raw", {"command": f"{log}; date > $ALAMODE_OUTPUT/x", "partition": "interval"})
    lookup = dag.task("lookup", {"command": f"{log}; echo table > $ALAMODE_OUTPUT/x"})
    report = dag.task("report", {"command": f"{log}; cat $ALAMODE_INPUT_RAW/x > $ALAMODE_OUTPUT/x"})
    [raw, lookup] >> report
    return dag


def backfill(home: AirflowHome, start: str, end: str, *extra: str) -> list[tuple]:
    """``airflow backfill create`` and wait for the scheduler to complete it."""
    home.cli(
        "backfill", "create", "--dag-id", "daily", "--from-date", start, "--to-date", end, *extra
    )
    (latest,) = home.query("select max(id) from backfill")[0]
    return wait_backfill(home, latest)


def executed(counter, dates) -> Counter:
    """How often each task ran for the intervals starting on ``dates``."""
    lines = [line.split(" ") for line in counter.read_text().splitlines()]
    return Counter(task for task, start in lines if start[:10] in dates or task == "lookup")


def test_backfills_compute_each_interval_once(tmp_path, migrated_db):
    counter = tmp_path / "executed.txt"
    port = free_port()
    home = AirflowHome(tmp_path / "home", tmp_path / "dags", extra_env=service_env(port))
    home.home.mkdir()
    home.dags.mkdir()
    shutil.copy(migrated_db, home.home / "airflow.db")
    shutil.copy(LOADER, home.dags / LOADER.name)
    daily(counter).save(home.dags / "daily.alamode")
    january = {"2026-01-01", "2026-01-02", "2026-01-03"}
    december = {"2025-12-30", "2025-12-31"}
    with services(home, port):
        wait_registered(home, ["daily"])
        home.cli("dags", "unpause", "daily")
        # Unpausing may add a scheduled run for the latest day; backfills come on top.
        first = backfill(home, "2026-01-01", "2026-01-03")
        assert [r[2] for r in first] == ["success"] * 3
        assert executed(counter, january) == {"raw": 3, "report": 3, "lookup": 1}

        again = backfill(home, "2026-01-01", "2026-01-03", "--reprocess-behavior", "completed")
        assert len(again) == 3
        assert executed(counter, january) == {"raw": 3, "report": 3, "lookup": 1}
        states = home.query(
            "select t.state, count(*) from task_instance t join dag_run r using (dag_id, run_id)"
            " where r.run_type='backfill' and t.task_id != 'alamode_plan' group by t.state"
        )
        assert dict(states)["skipped"] >= 9

        earlier = backfill(home, "2025-12-30", "2025-12-31")
        assert [r[2] for r in earlier] == ["success"] * 2
        assert executed(counter, december) == {"raw": 2, "report": 2, "lookup": 1}

    store = OutputStore(str(home.store))
    per_task = Counter(
        record.task
        for record in records(store)
        if record.interval is None or record.interval[0][:10] in january | december
    )
    assert per_task == {"raw": 5, "report": 5, "lookup": 1}
