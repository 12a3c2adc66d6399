"""What a command may do, on a real Airflow: every process of it dies with its task, and
it cannot change its inputs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from a_la_mode import Dag
from alamode_airflow.history import lineage
from alamode_airflow.store import OutputStore
from loopback.airflow_cli import AIRFLOW
from tests.airflow.conftest import writer
from tests.unit.test_runner import running


def test_a_killed_task_leaves_no_process_of_its_command_running(airflow):
    token = f"3.{os.getpid()}{time.monotonic_ns() % 10**6:06d}"  # a sleep of ~3 s, ours alone
    dag = Dag({"dag_id": "killed"})
    command = (
        f'echo partial > "$ALAMODE_OUTPUT/x" && sleep {token} && echo done >> "$ALAMODE_OUTPUT/x"'
    )
    dag.task("slow", {"command": command})
    airflow.save(dag, "killed")
    run = subprocess.Popen(
        [AIRFLOW, "dags", "test", "killed", "2026-01-01"],
        env=airflow.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        # Its shell holds the token from its start: wait for the first write too.
        while not running(token) or not list((airflow.store / "staging").glob("*/data/x")):
            assert run.poll() is None, "the run ended before its command started"
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        sleeping = time.monotonic()
        os.killpg(run.pid, signal.SIGKILL)  # Airflow and its task, as a lost worker
        run.wait()
        while running(token) and time.monotonic() < sleeping + 2:
            time.sleep(0.05)
        assert running(token) == []
        time.sleep(max(0.0, sleeping + 3.5 - time.monotonic()))  # past the sleep's end
        (partial,) = (airflow.store / "staging").glob("*/data/x")
        assert partial.read_text() == "partial\n"
        assert not (airflow.store / "objects").exists()
    finally:
        for pid in running(token):
            os.kill(pid, signal.SIGKILL)


def sha256s(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file()
    }


def appender(counter: Path) -> Dag:
    """``second`` appends to its input ``first``'s out.txt."""
    dag = Dag({"dag_id": "appends"})
    first = dag.task("first", writer(counter, "first"))
    dag.task("second", {"command": 'echo more >> "$ALAMODE_INPUT_FIRST/out.txt"'}).add_dep(first)
    return dag


def first_output(airflow, dag: Dag) -> tuple[OutputStore, str, Path]:
    store = OutputStore(str(airflow.store))
    oid = dag.encode()["tasks"]["first"]["output"]
    return store, oid, Path(store.location(oid, store.lookup(oid).generation).path)


@pytest.mark.skipif(os.geteuid() != 0, reason="read-only mounts need root")
def test_a_task_cannot_write_into_its_input(airflow, counter):
    dag = appender(counter)
    airflow.save(dag, "appends")
    states = airflow.run("appends", "2026-01-01", ok=False)
    assert states == {"alamode_plan": "success", "first": "success", "second": "failed"}
    assert (
        "task 'second': command exited with status 1: it tried to write into its input "
        "'first' (ALAMODE_INPUT_FIRST), which is read-only"
    ) in airflow.last_log
    store, oid, location = first_output(airflow, dag)
    # The record's manifest holds each file's sha256 when first committed, before second.
    committed = {entry.path: entry.sha256 for entry in store.lookup(oid).record.manifest}
    assert sha256s(location) == committed
    assert (location / "out.txt").read_text() == "first\n"
    assert lineage(store, oid, verify=True).check.value == "ok"


def test_without_mounts_a_changed_input_fails_the_task_naming_it(airflow, counter):
    airflow = type(airflow)(
        airflow.home, airflow.dags, extra_env=(("AIRFLOW__ALAMODE__PROTECT_INPUTS", "check"),)
    )
    dag = appender(counter)
    airflow.save(dag, "appends")
    states = airflow.run("appends", "2026-01-01", ok=False)
    assert states == {"alamode_plan": "success", "first": "success", "second": "failed"}
    assert "task 'second': the command modified its input 'first': out.txt" in airflow.last_log
