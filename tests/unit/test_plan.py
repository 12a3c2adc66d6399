"""The plan task on an S3 root (moto on loopback), run in-process with a small fake
context: outputs the DAG's tasks committed are skipped by their receipts, no record read,
and a stale one is explained by its record."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
import structlog.testing

from a_la_mode import Dag, load
from alamode_airflow._compat import DownstreamTasksSkipped
from alamode_airflow.factory import build_dag
from alamode_airflow.operators import PLAN_TASK, PLAN_XCOM
from alamode_airflow.store import RECORD
from tests.unit.test_operators import FakeTaskInstance, run


@pytest.fixture
def dag(s3_store, tmp_path):
    """fetch -> report, built as the DAG factory builds it, on ``s3_store``."""
    version = tmp_path / "version"
    version.write_text("v1")
    spec = Dag({"dag_id": "receipted"})
    fetch = spec.task("fetch", {"command": f'cat {version} > "$ALAMODE_OUTPUT/out.txt"'})
    report = spec.task("report", {"command": 'cp "$ALAMODE_INPUT_FETCH/out.txt" "$ALAMODE_OUTPUT"'})
    fetch >> report
    path = Path(tmp_path / "receipted.alamode")
    path.write_bytes(spec.bencode())
    return build_dag(load(spec.bencode()), path, s3_store.url)


def plan(dag, run_id: str) -> FakeTaskInstance:
    """Execute the plan task of ``dag``'s run ``run_id``: its task instance, with the
    plan it pushed."""
    ti = FakeTaskInstance(dag.dag_id, PLAN_TASK, run_id, {})
    context = {"ti": ti, "run_id": run_id, "params": {}, "dag_run": None}
    with contextlib.suppress(DownstreamTasksSkipped):  # what Airflow catches
        dag.get_task(PLAN_TASK).execute(context)
    return ti


def test_a_plan_skips_committed_outputs_by_their_receipts(dag, s3_sent):
    run(dag.get_task("fetch"), dag.dag_id, "run-1")
    run(dag.get_task("report"), dag.dag_id, "run-1")
    s3_sent.clear()
    with structlog.testing.capture_logs() as logged:  # the task's log, as Airflow keeps it
        pushed = plan(dag, "run-2").pushed[PLAN_XCOM]
    assert pushed["skipped"] == ["fetch", "report"]
    assert not [url for _, url in s3_sent if url.endswith(RECORD)], s3_sent
    said = [e["event"] % tuple(e.get("positional_args", ())) for e in logged]
    produced = r"report: output [0-9a-f]{12} already produced by the commit of generation 0 "
    assert any(re.match(produced, line) for line in said), said


def test_a_plan_says_which_input_made_an_output_stale(dag):
    """The receipt says stale; the record, read for it alone, says why."""
    run(dag.get_task("fetch"), dag.dag_id, "run-1")
    run(dag.get_task("report"), dag.dag_id, "run-1")
    run(dag.get_task("fetch"), dag.dag_id, "run-2", rebuild=["fetch"])
    pushed = plan(dag, "run-3").pushed[PLAN_XCOM]
    assert pushed["skipped"] == ["fetch"]
    assert pushed["stale"] == {"report": "input fetch is now generation 1"}
