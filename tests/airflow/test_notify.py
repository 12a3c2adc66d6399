"""Failure notifications and deadline alerts configured in the file, on a real Airflow,
received by a real HTTP server on loopback through an Airflow connection."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from a_la_mode import Dag, load
from loopback.local import query, services, start, stop, wait_registered
from tests.airflow.conftest import Airflow, started

#: The notifier a file names: the connection holds the receiver's address.
HOOK = {"notifier": "http", "conn_id": "ops_alerts", "endpoint": "/hooks/airflow"}


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST: (path, JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def connection(self) -> tuple[str, str]:
        """The environment variable defining Airflow connection ``ops_alerts``."""
        host, port = self.server.server_address[:2]
        conn = {"conn_type": "http", "host": host, "port": port, "schema": "http"}
        return ("AIRFLOW_CONN_OPS_ALERTS", json.dumps(conn))

    def wait(self, count: int, timeout: float) -> list[dict]:
        """The bodies of the first ``count`` POSTs, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return [body for _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def alerted(airflow: Airflow, receiver: Receiver) -> Airflow:
    """The test's Airflow, with connection ``ops_alerts`` pointing at the receiver."""
    return dataclasses.replace(airflow, extra_env=(*airflow.extra_env, receiver.connection))


def test_a_failed_task_posts_one_summary_naming_dag_task_and_output(alerted, receiver):
    dag = Dag({"dag_id": "alerting"})
    dag.task("fails", {"command": "exit 3"}, on_failure=[HOOK])
    path = alerted.save(dag, "alerting")
    result = alerted.test_run("alerting", "2026-01-01", check=False)
    assert result.states["fails"] == "failed"
    assert [path for path, _ in receiver.posts] == ["/hooks/airflow"]
    (body,) = receiver.wait(1, 0)
    assert body["event"] == "task_failed"
    assert (body["dag_id"], body["task_id"], body["run_id"]) == (
        "alerting",
        "fails",
        result.run_id,
    )
    assert body["output_id"] == load(path)["fails"].output
    assert body["state"] == "failed"
    assert body["try_number"] == "1"
    assert "exited with status 3" in body["reason"]
    assert "/dags/alerting/runs/" in body["log_url"]
    assert body["log_url"].split("?")[0].endswith("/tasks/fails")


def test_file_wide_notifiers_tell_each_failed_task_apart(alerted, receiver):
    """One ``defaults.on_failure`` for every task: each failure is its own summary,
    even when Airflow runs both tasks in one process (``dags test``)."""
    dag = Dag({"dag_id": "alerting", "defaults": {"on_failure": [HOOK]}})
    dag.task("first", {"command": "exit 3"})
    dag.task("second", {"command": "exit 4"})
    alerted.save(dag, "alerting")
    alerted.test_run("alerting", "2026-01-01", check=False)
    bodies = sorted(receiver.wait(2, 0), key=lambda body: body["task_id"])
    assert [(b["task_id"], b["reason"][-20:]) for b in bodies] == [
        ("first", "exited with status 3"),
        ("second", "exited with status 4"),
    ]


def test_a_successful_run_sends_nothing(alerted, receiver):
    dag = Dag({"dag_id": "quiet", "on_failure": [HOOK], "defaults": {"on_failure": [HOOK]}})
    dag.task("works", {"command": "true"})
    alerted.save(dag, "quiet")
    assert alerted.run("quiet", "2026-01-01")["works"] == "success"
    assert receiver.posts == []


def test_a_failed_run_posts_a_summary_of_the_run(alerted, receiver):
    dag = Dag({"dag_id": "alerting", "on_failure": [{**HOOK, "endpoint": "/hooks/runs"}]})
    dag.task("fails", {"command": "exit 3"})
    dag.task("works", {"command": "true"})
    alerted.save(dag, "alerting")
    result = alerted.test_run("alerting", "2026-01-01", check=False)
    assert result.states == {"alamode_plan": "success", "fails": "failed", "works": "success"}
    assert [path for path, _ in receiver.posts] == ["/hooks/runs"]
    (body,) = receiver.wait(1, 0)
    assert body["event"] == "dag_run_failed"
    assert (body["dag_id"], body["run_id"], body["state"]) == ("alerting", result.run_id, "failed")
    assert body["task_id"] == "fails"  # the failed task that failed the run


@pytest.mark.slow
def test_a_deployment_tells_of_a_failed_run_and_of_a_missed_deadline(
    tmp_path, migrated_db, receiver
):
    """What ``dags test`` cannot show: the scheduler hands a failed run's callbacks to
    the dag-processor, and notices a missed deadline, whose notifier the triggerer
    awaits. LocalExecutor on SQLite, all on loopback."""
    home, port = started(tmp_path, migrated_db)
    home = dataclasses.replace(home, extra_env=(*home.extra_env, receiver.connection))
    failing = Dag({"dag_id": "failing", "on_failure": [{**HOOK, "endpoint": "/hooks/runs"}]})
    failing.task("fails", {"command": "exit 3"})
    path = failing.save(home.dags / "failing.alamode")
    notify = [{**HOOK, "endpoint": "/hooks/deadlines"}]
    late = Dag(
        {"dag_id": "late", "deadline": {"reference": "queued", "within": 2, "notify": notify}}
    )
    late.task("sleeps", {"command": "sleep 120"})
    late.save(home.dags / "late.alamode")
    with services(home, port):
        triggerer = start(home, "triggerer", ["triggerer"])
        try:
            wait_registered(home, ["failing", "late"])
            for dag_id in ("failing", "late"):
                home.cli("dags", "unpause", dag_id)
                home.cli("dags", "trigger", dag_id)
            receiver.wait(2, timeout=240)
        finally:
            stop([triggerer])
    told = dict(receiver.posts)
    assert sorted(told) == ["/hooks/deadlines", "/hooks/runs"], receiver.posts
    runs = dict(query(home, "select dag_id, run_id from dag_run"))
    run = told["/hooks/runs"]
    assert (run["event"], run["dag_id"], run["run_id"]) == (
        "dag_run_failed",
        "failing",
        runs["failing"],
    )
    assert (run["task_id"], run["output_id"]) == ("fails", load(path)["fails"].output)
    missed = told["/hooks/deadlines"]
    assert (missed["event"], missed["dag_id"], missed["run_id"]) == (
        "deadline_missed",
        "late",
        runs["late"],
    )
    assert missed["state"] == "running"
    assert missed["deadline"]
