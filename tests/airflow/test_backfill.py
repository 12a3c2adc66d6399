"""Backfills through the real ``airflow backfill create`` CLI, executed by a real
scheduler (LocalExecutor) with its api-server and dag-processor on loopback."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest

from a_la_mode import Dag
from alamode_airflow.history import records
from alamode_airflow.store import OutputStore
from loopback.airflow_cli import AirflowHome
from loopback.local import (
    query,
    services,
    wait_backfill,
    wait_registered,
)
from loopback.wait import until
from tests.airflow.conftest import started

pytestmark = pytest.mark.slow
FINISHED = {"success", "failed"}


#: Commands run in the encoded file's folder (the dags folder); they log to the
#: counter file beside it, by a relative path so the specs, and so the IDs, are fixed.
COUNTER = "../executed.txt"
#: raw's partition IDs (its file ID is the same in both pipelines) for the day and for
#: the first hour starting at midnight on 2026-01-02.
DAILY_RAW_2026_01_02 = "5ee718b57f104ba0d7a507122e8fc8222d437c46bd10015280aedc638f79abcf"
HOURLY_RAW_2026_01_02T00 = "73d030e3b3dafeffc3c66cb72df886a4cadf71496a4c02d8d6c25d863424674f"


def daily(dag_id: str = "daily", schedule: str = "@daily") -> Dag:
    """raw is partitioned (so is report, downstream of it); every command logs its task
    and the interval it was given to COUNTER. The DAG id and schedule are not in any
    spec, so pipelines that differ only in them have the same file IDs."""
    dag = Dag({"dag_id": dag_id, "schedule": schedule, "start_date": "2026-01-01"})
    log = f'echo "$ALAMODE_TASK $ALAMODE_INTERVAL_START $ALAMODE_INTERVAL_END" >> {COUNTER}'
    raw = dag.task("raw", {"command": f"{log}; date > $ALAMODE_OUTPUT/x", "partition": "interval"})
    lookup = dag.task("lookup", {"command": f"{log}; echo table > $ALAMODE_OUTPUT/x"})
    report = dag.task("report", {"command": f"{log}; cat $ALAMODE_INPUT_RAW/x > $ALAMODE_OUTPUT/x"})
    [raw, lookup] >> report
    return dag


def backfill(
    home: AirflowHome, start: str, end: str, *extra: str, dag_id: str = "daily"
) -> list[tuple]:
    """``airflow backfill create`` and wait for the scheduler to complete it.

    SQLite refuses at once a writer that would deadlock with another ('database is
    locked', whatever the busy timeout), and the scheduler and the task processes write
    all the time. The backfill row is committed before its runs: after such a failure,
    wait for the scheduler to complete what was created, then create it again."""
    args = ("--dag-id", dag_id, "--from-date", start, "--to-date", end, *extra)
    for _ in range(5):
        done = home.cli("backfill", "create", *args, check=False)
        if done.returncode == 0 or "database is locked" not in done.stderr:
            break
        (partial,) = query(home, "select max(id) from backfill")[0]
        if partial is not None:
            wait_backfill(home, partial)
    assert done.returncode == 0, done.stderr[-3000:]
    (latest,) = home.query("select max(id) from backfill")[0]
    return wait_backfill(home, latest)


def executed(counter, dates) -> Counter:
    """How often each task ran for the intervals starting on ``dates``."""
    lines = [line.split(" ") for line in counter.read_text().splitlines()]
    return Counter(task for task, start, _ in lines if start[:10] in dates or task == "lookup")


def intervals(counter, task: str = "raw") -> set[tuple[datetime, datetime]]:
    """The intervals ``task``'s command was given, as datetimes."""
    lines = [line.split(" ") for line in counter.read_text().splitlines()]
    return {
        (datetime.fromisoformat(start), datetime.fromisoformat(end))
        for name, start, end in lines
        if name == task
    }


def unpause(home: AirflowHome, *dag_ids: str, timeout: float = 300.0) -> None:
    """Unpause, then wait for the run the scheduler makes for the latest complete period
    (a data-interval timetable runs it at once) to finish: a backfill created while it
    writes to SQLite can fail with 'database is locked'."""
    for dag_id in dag_ids:
        home.cli("dags", "unpause", dag_id)
    marks = ",".join("?" * len(dag_ids))
    sql = f"select dag_id, state from dag_run where dag_id in ({marks})"

    def finished() -> bool:
        runs = query(home, sql, *dag_ids)
        return {d for d, _ in runs} == set(dag_ids) and all(s in FINISHED for _, s in runs)

    until(finished, timeout=timeout, every=1, what=f"scheduled runs of {dag_ids} not finished")


def test_backfills_compute_each_interval_once(tmp_path, migrated_db):
    counter = tmp_path / "executed.txt"
    home, port = started(tmp_path, migrated_db)
    daily().save(home.dags / "daily.alamode")
    january = {"2026-01-01", "2026-01-02", "2026-01-03"}
    december = {"2025-12-30", "2025-12-31"}
    with services(home, port):
        wait_registered(home, ["daily"])
        unpause(home, "daily")  # runs the latest day; the backfills come on top
        first = backfill(home, "2026-01-01", "2026-01-03")
        assert [r[2] for r in first] == ["success"] * 3
        assert executed(counter, january) == {"raw": 3, "report": 3, "lookup": 1}
        # Each backfilled day is the interval [day, next day): 24 hours, as Airflow
        # records it for the run.
        days = {start: end for start, end in intervals(counter) if start.month == 1}
        assert sorted(days) == [datetime.fromisoformat(f"{d}T00:00:00Z") for d in sorted(january)]
        assert {end - start for start, end in days.items()} == {timedelta(hours=24)}
        recorded = home.query(
            "select data_interval_start, data_interval_end from dag_run where run_type='backfill'"
        )
        assert {datetime.fromisoformat(e) - datetime.fromisoformat(s) for s, e in recorded} == {
            timedelta(hours=24)
        }

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


def raw_records(home: AirflowHome) -> dict[str, tuple[str, str]]:
    """Every committed output of task raw: output ID -> its recorded interval."""
    store = OutputStore(str(home.store))
    return {r.output_id: r.interval for r in records(store) if r.task == "raw"}


def test_hourly_and_daily_pipelines_never_share_a_partition(tmp_path, migrated_db):
    home, port = started(tmp_path, migrated_db)
    daily().save(home.dags / "daily.alamode")
    daily("hourly", "@hourly").save(home.dags / "hourly.alamode")
    with services(home, port):
        wait_registered(home, ["daily", "hourly"])
        unpause(home, "daily", "hourly")
        # Both start at midnight on 2026-01-02: same spec, same start, other periods.
        days = backfill(home, "2026-01-02", "2026-01-02")
        hours = backfill(home, "2026-01-02T00:00:00", "2026-01-02T01:00:00", dag_id="hourly")
        assert [r[2] for r in days + hours] == ["success"] * 3

    midnight = "2026-01-02T00:00:00Z"
    ours = {oid: iv for oid, iv in raw_records(home).items() if iv[0][:10] == "2026-01-02"}
    assert sorted(ours.values()) == [
        (midnight, "2026-01-02T01:00:00Z"),
        (midnight, "2026-01-03T00:00:00Z"),
        ("2026-01-02T01:00:00Z", "2026-01-02T02:00:00Z"),
    ]
    # Pinned: the hourly and the daily partition starting at midnight are different outputs.
    by_interval = {iv: oid for oid, iv in ours.items()}
    assert by_interval[(midnight, "2026-01-03T00:00:00Z")] == DAILY_RAW_2026_01_02
    assert by_interval[(midnight, "2026-01-02T01:00:00Z")] == HOURLY_RAW_2026_01_02T00


def test_manual_run_covers_the_last_complete_period_before_its_logical_date(airflow, counter):
    airflow.save(daily(), "daily")
    states = airflow.run("daily", "2026-01-05T06:00:00")
    assert states["raw"] == "success"
    # Airflow's rule for a data-interval timetable, and what its UI shows for the run.
    expected = (
        datetime.fromisoformat("2026-01-04T00:00:00Z"),
        datetime.fromisoformat("2026-01-05T00:00:00Z"),
    )
    assert intervals(counter) == {expected}
    (recorded,) = airflow.query(
        "select data_interval_start, data_interval_end from dag_run where dag_id='daily'"
    )
    assert recorded[0].startswith("2026-01-04 00:00:00")
    assert recorded[1].startswith("2026-01-05 00:00:00")
