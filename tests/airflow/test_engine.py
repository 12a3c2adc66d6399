"""The engine end to end on a real Airflow: loading, incremental runs, failures,
sharing and provenance."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys

from a_la_mode import Dag
from alamode_airflow import manifests
from tests.airflow.conftest import executed, writer

DONE = {"alamode_plan": "success"}


def chain(counter, dag_id="chain", b_text="b") -> Dag:
    """a -> b -> c, and d on its own."""
    dag = Dag({"dag_id": dag_id})
    a = dag.task("a", writer(counter, "a"))
    b = dag.task("b", writer(counter, b_text, reads="a"))
    c = dag.task("c", writer(counter, "c", reads="b"))
    dag.task("d", writer(counter, "d"))
    a >> b >> c
    return dag


def tree_digest(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_mtime_ns}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_first_run_computes_second_run_skips_everything(airflow, counter):
    dag = chain(counter)
    airflow.save(dag, "chain")
    first = airflow.run("chain", "2026-01-01")
    assert first == {**DONE, "a": "success", "b": "success", "c": "success", "d": "success"}
    assert sorted(executed(counter)) == ["a", "b", "c", "d"]

    c_id = dag.encode()["tasks"]["c"]["output"]
    assert (airflow.store / "objects" / c_id / "0" / "data" / "out.txt").read_text() == "a\nb\nc\n"
    record = json.loads((airflow.store / "objects" / c_id / "0" / "record.json").read_text())
    assert record["task"] == "c"
    assert record["dag_id"] == "chain"
    assert record["manifest"][0]["path"] == "out.txt"
    assert record["inputs"] == {"b": dag.encode()["tasks"]["b"]["output"]}
    (xcom,) = airflow.query(
        "select value from xcom where dag_id='chain' and task_id='c' and key='alamode_record'"
    )
    assert c_id in str(xcom[0])

    second = airflow.run("chain", "2026-01-02")
    assert second == {**DONE, "a": "skipped", "b": "skipped", "c": "skipped", "d": "skipped"}
    assert sorted(executed(counter)) == ["a", "b", "c", "d"]
    assert "already produced by run manual__" in airflow.last_log


def test_spec_change_runs_exactly_the_task_and_its_descendants(airflow, counter):
    airflow.save(chain(counter), "chain")
    airflow.run("chain", "2026-01-01")
    airflow.save(chain(counter, b_text="b2"), "chain")
    states = airflow.run("chain", "2026-01-02")
    assert states == {**DONE, "a": "skipped", "b": "success", "c": "success", "d": "skipped"}
    assert executed(counter)[4:] == ["b", "c"]


def test_failing_command_commits_nothing_and_is_recomputed_next_run(airflow, counter, tmp_path):
    flag = tmp_path / "fixed"
    dag = Dag({"dag_id": "flaky"})
    a = dag.task("a", writer(counter, "a"))
    b = dag.task(
        "b", {"command": f"echo b >> {counter}; test -f {flag} || exit 3; touch $ALAMODE_OUTPUT/ok"}
    )
    c = dag.task("c", writer(counter, "c"))
    a >> b >> c
    airflow.save(dag, "flaky")
    states = airflow.run("flaky", "2026-01-01", ok=False)
    assert states == {**DONE, "a": "success", "b": "failed", "c": "upstream_failed"}
    b_id = dag.encode()["tasks"]["b"]["output"]
    assert not (airflow.store / "objects" / b_id).exists()
    assert list((airflow.store / "staging").iterdir()) == []
    assert airflow.query(
        "select count(*) from xcom where task_id='b' and key='alamode_record'"
    ) == [(0,)]

    flag.touch()
    states = airflow.run("flaky", "2026-01-02")
    assert states == {**DONE, "a": "skipped", "b": "success", "c": "success"}
    assert (airflow.store / "objects" / b_id / "0" / "record.json").exists()


def test_earlier_logical_date_skips_what_later_runs_produced(airflow, counter):
    airflow.save(chain(counter), "chain")
    airflow.run("chain", "2026-03-01")
    states = airflow.run("chain", "2026-01-01")
    assert states == {**DONE, "a": "skipped", "b": "skipped", "c": "skipped", "d": "skipped"}
    assert len(executed(counter)) == 4


def test_two_dag_files_sharing_a_task_share_its_output(airflow, counter):
    airflow.save(chain(counter, dag_id="first"), "first")
    airflow.save(chain(counter, dag_id="second", b_text="other"), "second")
    airflow.run("first", "2026-01-01")
    states = airflow.run("second", "2026-01-01")
    assert states == {**DONE, "a": "skipped", "b": "success", "c": "success", "d": "skipped"}
    assert sorted(executed(counter)[4:]) == ["b", "c"]
    assert len(list((airflow.store / "objects").iterdir())) == 6


def test_two_tasks_with_one_output_id_write_it_once(airflow, counter):
    dag = Dag({"dag_id": "twins"})
    dag.task("left", writer(counter, "same"))
    dag.task("right", writer(counter, "same"))
    airflow.save(dag, "twins")
    states = airflow.run("twins", "2026-01-01")
    assert sorted(states.values()) == ["skipped", "success", "success"]
    assert len(executed(counter)) == 1


def test_committed_outputs_are_never_rewritten(airflow, counter):
    airflow.save(chain(counter), "chain")
    airflow.run("chain", "2026-01-01")
    objects = airflow.store / "objects"
    first = {p.name: tree_digest(p) for p in objects.iterdir()}
    airflow.run("chain", "2026-01-02")
    airflow.save(chain(counter, b_text="b2"), "chain")
    airflow.run("chain", "2026-01-03")
    airflow.save(chain(counter), "chain")
    assert airflow.run("chain", "2026-01-04")["b"] == "skipped"
    # The first four outputs are untouched, byte for byte and mtime for mtime; the
    # changed b and its descendant c went to new locations.
    assert {name: tree_digest(objects / name) for name in first} == first
    assert len(list(objects.iterdir())) == 6


def test_record_whose_output_vanished_is_recomputed_with_its_readers(airflow, counter):
    """a's data vanished: a is built again as generation 1, and b and c, made from
    generation 0 that no longer exists, are out of date with it; d is untouched."""
    dag = chain(counter)
    airflow.save(dag, "chain")
    airflow.run("chain", "2026-01-01")
    a_id = dag.encode()["tasks"]["a"]["output"]
    manifests.remove(airflow.store / "objects" / a_id / "0" / "data")
    states = airflow.run("chain", "2026-01-02")
    assert states == {**DONE, "a": "success", "b": "success", "c": "success", "d": "skipped"}
    assert "is not a success" in airflow.last_log
    assert "but its data is gone" in airflow.last_log
    assert "b: output" in airflow.last_log
    assert (airflow.store / "objects" / a_id / "1" / "data" / "out.txt").read_text() == "a\n"
    assert not (airflow.store / "objects" / a_id / "0").exists()
    assert (airflow.store / "objects" / a_id / "0.void").exists()
    (kept,) = (airflow.store / "quarantine").iterdir()
    assert (kept / "record.json").exists()  # the old record is kept, not deleted


def test_success_record_in_xcom_carries_provenance(airflow, counter):
    dag = chain(counter)
    airflow.save(dag, "chain")
    airflow.run("chain", "2026-01-01")
    encoded = dag.encode()["tasks"]["b"]
    (value,) = airflow.query(
        "select value from xcom where dag_id='chain' and task_id='b' and key='alamode_record'"
    )[0]
    record = json.loads(value)
    assert record["output_id"] == encoded["output"]
    assert record["inputs"] == {"a": encoded["inputs"]["a"]}
    assert record["command"] == encoded["command"]
    assert record["run_id"].startswith("manual__")
    assert record["try_number"] == 1
    assert record["manifest"] == [
        {"path": "out.txt", "size": 4, "sha256": hashlib.sha256(b"a\nb\n").hexdigest()}
    ]
    preimage = base64.b64decode(record["preimage_b64"])
    assert hashlib.sha256(preimage).hexdigest() == encoded["output"]
    for key in ("dag_id", "task", "start", "end", "duration_s", "host", "image", "sha"):
        assert key in record


# What the api-server does for a task's links (its extra-links endpoint): the task
# from the serialized DAG, its links as the plugins registered them, for one instance.
UI_LINK = """
import sys
from sqlalchemy import select
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance as TI
from airflow.utils.session import create_session

dag_id, run_id, task_id = sys.argv[1:]
with create_session() as session:
    where = (TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id)
    ti = session.scalars(select(TI).where(*where)).one()
    task = SerializedDagModel.get_dag(dag_id, session=session).get_task(task_id)
    print(task.extra_links, repr(task.get_extra_links(ti, "Output location")))
"""


def ui_link(airflow, dag_id: str, run_id: str, task_id: str) -> str:
    """The task's links, and its Output location as the UI shows it."""
    args = [sys.executable, "-c", UI_LINK, dag_id, run_id, task_id]
    done = subprocess.run(args, env=airflow.env, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()[-1]


# SQLite's plan of each statement the link makes on ``asset_event``.
LINK_QUERY_PLANS = """
import sys
from sqlalchemy import event
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance as TI
from airflow.settings import engine
from airflow.utils.session import create_session

seen = []
@event.listens_for(engine, "before_cursor_execute")
def keep(conn, cursor, statement, parameters, context, executemany):
    if "FROM asset_event" in statement and not statement.startswith("EXPLAIN"):
        seen.append((statement, parameters))

dag_id, run_id, task_id = sys.argv[1:]
with create_session() as session:
    ti = session.query(TI).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
    task = SerializedDagModel.get_dag(dag_id, session=session).get_task(task_id)
    print("link", repr(task.get_extra_links(ti, "Output location")))
    for statement, parameters in list(seen):
        rows = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        print("plan", " | ".join(row[-1] for row in rows))
"""


def test_the_output_link_finds_its_event_through_an_index(airflow, counter):
    # asset_event holds an event per output ever committed: the link must not read it
    # whole at each view (it has no index on the event's source task).
    airflow.save(chain(counter), "chain")
    airflow.run("chain", "2026-01-01")
    (run_id,) = airflow.query("select run_id from dag_run where dag_id='chain'")[0]
    args = [sys.executable, "-c", LINK_QUERY_PLANS, "chain", run_id, "c"]
    done = subprocess.run(args, env=airflow.env, capture_output=True, text=True, check=True)
    lines = [line.split(" ", 1) for line in done.stdout.splitlines()]
    (link,) = [text for kind, text in lines if kind == "link"]
    plans = [text for kind, text in lines if kind == "plan"]
    assert link.endswith("/data'")
    assert plans, "the link looked for no asset event"
    for plan in plans:
        assert "USING INDEX idx_asset_id_timestamp" in plan, plan
        assert "SCAN asset_event" not in plan, plan


def test_ui_link_and_asset_events_carry_the_output(airflow, counter):
    dag = chain(counter)
    airflow.save(dag, "chain")
    airflow.run("chain", "2026-01-01")
    c_id = dag.encode()["tasks"]["c"]["output"]
    # The api-server derives the link from what the attempt stored: the task pushes
    # none (a round trip and a database write less per task attempt).
    assert airflow.query("select key from xcom where dag_id='chain' and key like '_link_%'") == []
    (first,) = airflow.query("select run_id from dag_run where dag_id='chain'")[0]
    location = f"{airflow.store}/objects/{c_id}/0/data"
    assert (
        ui_link(airflow, "chain", first, "c") == f"['Output location', 'Provenance'] '{location}'"
    )
    events = airflow.query(
        "select a.uri, e.extra from asset_event e join asset a on a.id = e.asset_id "
        "where e.source_task_id='c'"
    )
    assert len(events) == 1
    uri, extra = events[0]
    assert uri == f"x-alamode://outputs/{c_id}"
    assert json.loads(extra)["output_id"] == c_id
    # A cached run produces nothing, so it announces nothing and links nowhere.
    airflow.run("chain", "2026-01-02")
    assert len(airflow.query("select 1 from asset_event where source_task_id='c'")) == 1
    (cached,) = airflow.query("select run_id from dag_run where run_id != ?", first)[0]
    assert ui_link(airflow, "chain", cached, "c") == "['Output location', 'Provenance'] ''"
    # Without its asset event, the link comes from the record in XCom.
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        db.execute("delete from asset_event")
    assert (
        ui_link(airflow, "chain", first, "c") == f"['Output location', 'Provenance'] '{location}'"
    )
