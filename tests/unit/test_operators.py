"""The operator's branches in-process, with a small fake of what Airflow hands a task:
skip when current, produce when stale or rebuilt, and whose run a rebuild matches."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from a_la_mode import Dag, load
from alamode_airflow._compat import AirflowSkipException
from alamode_airflow.manifests import remove
from alamode_airflow.operators import (
    PLAN_XCOM,
    REBUILD_XCOM,
    RECORD_XCOM,
    AlamodeCommandOperator,
)
from alamode_airflow.runner import InputModified
from alamode_airflow.store import Found, OutputStore

SCHEDULED = "scheduled__2026-01-01T00:00:00+00:00"  # the same in every daily DAG


class FakeTaskInstance:
    def __init__(self, dag_id: str, task_id: str, run_id: str, plan: dict) -> None:
        self.dag_id, self.task_id, self.run_id = dag_id, task_id, run_id
        self.try_number, self.map_index = 1, -1
        self.plan, self.pushed, self.pulls = plan, {}, 0
        self.pulled: list[str] = []

    def xcom_pull(self, task_ids: str, key: str):
        """As the plan task pushed: the plan, and the names asked to rebuild."""
        self.pulls += 1
        self.pulled.append(key)
        if key == REBUILD_XCOM:
            return self.plan.get("rebuild_asked")
        return self.plan if key == PLAN_XCOM else None

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value


def run(op: AlamodeCommandOperator, dag_id: str, run_id: str, rebuild=()) -> dict | None:
    """Execute ``op`` as a task of ``dag_id``'s run ``run_id``: its record, or None
    when it skipped."""
    # As Airflow hands it: the trigger's conf in the task's params, and the plan's XCom
    # with the names asked.
    plan = {"rebuild": list(rebuild), "rebuild_asked": list(rebuild)}
    ti = FakeTaskInstance(dag_id, op.task_id, run_id, plan)
    context = {
        "ti": ti,
        "run_id": run_id,
        "params": {"rebuild": list(rebuild)},
        # An asset's event, as the task runner hands it: ``extra`` is set on it.
        "outlet_events": defaultdict(SimpleNamespace),
    }
    try:
        op.execute(context)
    except AirflowSkipException:
        return None
    return ti.pushed[RECORD_XCOM]


@pytest.fixture
def pipeline(tmp_path):
    version = tmp_path / "version"
    version.write_text("v1")
    dag = Dag({})
    fetch = dag.task("fetch", {"command": f'cat {version} > "$ALAMODE_OUTPUT/out.txt"'})
    report = dag.task("report", {"command": 'cp "$ALAMODE_INPUT_FETCH/out.txt" "$ALAMODE_OUTPUT"'})
    fetch >> report
    return load(dag.bencode()), version


def operator(task, store: OutputStore, tmp_path: Path) -> AlamodeCommandOperator:
    return AlamodeCommandOperator(
        task_id=task.name,
        output_id=task.output,
        inputs=task.inputs,
        preimage_source=task.preimage,
        command=task.spec["command"],
        cwd=str(tmp_path),
        storage_root=store.url,
    )


def test_a_rebuild_matches_the_run_of_its_own_dag_not_another_with_the_same_run_id(
    pipeline, tmp_path
):
    tasks, version = pipeline
    store = OutputStore(str(tmp_path / "store"))
    fetch = operator(tasks["fetch"], store, tmp_path)
    assert run(fetch, "one", SCHEDULED)["generation"] == 0
    version.write_text("v2")
    # DAG two's run has the same run ID; its rebuild must not take one's record as its own.
    record = run(fetch, "two", SCHEDULED, rebuild=["fetch"])
    assert record is not None
    assert record["generation"] == 1
    assert record["dag_id"] == "two"
    # A retry of DAG two's run finds its own record and skips.
    assert run(fetch, "two", SCHEDULED, rebuild=["fetch"]) is None


def test_a_stale_output_is_produced_as_the_next_generation_naming_what_it_read(pipeline, tmp_path):
    tasks, version = pipeline
    store = OutputStore(str(tmp_path / "store"))
    fetch, report = (operator(tasks[n], store, tmp_path) for n in ("fetch", "report"))
    run(fetch, "d", "run-1")
    assert run(report, "d", "run-1")["input_generations"] == {"fetch": 0}
    assert run(report, "d", "run-2") is None  # current: skipped
    version.write_text("v2")
    run(fetch, "d", "run-3", rebuild=["fetch"])
    record = run(report, "other", "run-4")  # another DAG meets it first
    assert record["generation"] == 1
    assert record["input_generations"] == {"fetch": 1}
    data = Path(store.where(tasks["report"].output)) / "out.txt"
    assert data.read_text() == "v2"
    first = store.read(tasks["report"].output, 0).record
    assert first.input_generations == {"fetch": 0}
    assert run(report, "d", "run-5") is None  # generation 1 read fetch's 1: current


def test_an_input_whose_generation_number_came_to_name_other_files_makes_its_readers_stale(
    pipeline, tmp_path
):
    """Where nothing remembers an output's generations (its folder deleted by hand, an
    object store's lifecycle rule expiring it), it is made again as generation 0: the
    same number, other files. A reader made from the old files is stale."""
    tasks, version = pipeline
    store = OutputStore(str(tmp_path / "store"))
    fetch, report = (operator(tasks[n], store, tmp_path) for n in ("fetch", "report"))
    run(fetch, "d", "run-1")
    made = run(report, "d", "run-1")
    assert made["input_generations"] == {"fetch": 0}
    remove(Path(store.root.path) / "objects" / tasks["fetch"].output)
    version.write_text("v2")
    assert run(fetch, "d", "run-2")["generation"] == 0  # the number again
    record = run(report, "d", "run-2")
    assert record is not None, "report was skipped, made from files fetch no longer holds"
    assert record["generation"] == 1
    assert (Path(store.where(tasks["report"].output)) / "out.txt").read_text() == "v2"
    assert run(report, "d", "run-3") is None  # made from these files: current


def test_an_input_changed_by_a_command_is_quarantined_and_never_served_again(
    pipeline, tmp_path, monkeypatch
):
    """Where inputs cannot be mounted read-only, a change is found after the command:
    the task fails naming the input, and the damaged generation is set aside."""
    monkeypatch.setenv("AIRFLOW__ALAMODE__PROTECT_INPUTS", "check")
    tasks, _ = pipeline
    store = OutputStore(str(tmp_path / "store"))
    fetch = operator(tasks["fetch"], store, tmp_path)
    run(fetch, "d", "run-1")
    vandal = operator(tasks["report"], store, tmp_path)
    vandal.command = (
        'chmod u+w "$ALAMODE_INPUT_FETCH/out.txt"; echo x >> "$ALAMODE_INPUT_FETCH/out.txt"'
    )
    with pytest.raises(InputModified, match="modified its input 'fetch'"):
        run(vandal, "d", "run-2")
    found = store.lookup(tasks["fetch"].output)
    assert found.status is Found.MISSING
    assert found.next_generation == 1
    assert store.lookup(tasks["report"].output).status is Found.MISSING
    assert run(fetch, "d", "run-3")["generation"] == 1


def test_only_a_run_asked_to_rebuild_reads_the_plan(pipeline, tmp_path):
    loaded, _ = pipeline
    store = OutputStore(str(tmp_path / "store"))
    fetch = operator(loaded["fetch"], store, tmp_path)
    ti = FakeTaskInstance("d", "fetch", "run-1", {"rebuild": ["fetch"]})
    context = {"ti": ti, "run_id": "run-1", "outlet_events": defaultdict(object)}
    fetch.execute(context)
    # No rebuild asked: the plan's list is not even read (one api-server request less).
    assert ti.pulls == 0
    assert ti.pushed[RECORD_XCOM]["generation"] == 0


def test_a_cleared_task_whose_output_is_recorded_says_clear_does_not_recompute(pipeline, tmp_path):
    """Clear re-runs an attempt: a recorded output is skipped again, and the skip says
    why and how to recompute it (a run that rebuilds the task)."""
    tasks, _ = pipeline
    store = OutputStore(str(tmp_path / "store"))
    fetch = operator(tasks["fetch"], store, tmp_path)
    assert run(fetch, "d", SCHEDULED) is not None
    ti = FakeTaskInstance("d", "fetch", SCHEDULED, {})
    ti.try_number = 2  # what Clear does to the task instance
    context = {"ti": ti, "run_id": SCHEDULED, "params": {}, "outlet_events": defaultdict(object)}
    with pytest.raises(AirflowSkipException) as skipped:
        fetch.execute(context)
    message = str(skipped.value)
    assert f"already produced by run {SCHEDULED}" in message
    assert "Clear never recomputes a recorded output" in message
    assert '"rebuild": ["fetch"]' in message
    # A first attempt that finds its output recorded is not told about Clear.
    first = FakeTaskInstance("d", "fetch", "manual__2", {})
    context |= {"ti": first, "run_id": "manual__2"}
    with pytest.raises(AirflowSkipException) as skipped:
        fetch.execute(context)
    assert "Clear" not in str(skipped.value)


def test_a_rebuilding_task_reads_the_names_asked_not_the_whole_plan(pipeline, tmp_path):
    """The plan lists every task (skipped, to run, stale): read by each task of a
    rebuild run, a 10k-task DAG's plan would cross the api-server 10k times. A task
    reads the names asked alone and resolves them against its own ancestors."""
    from airflow.sdk import DAG

    tasks, _ = pipeline
    store = OutputStore(str(tmp_path / "store"))
    with DAG("d", schedule=None):
        fetch = operator(tasks["fetch"], store, tmp_path)
        report = operator(tasks["report"], store, tmp_path)
        fetch >> report
    assert run(fetch, "d", "run-1") is not None
    assert run(report, "d", "run-1") is not None
    plan = {"rebuild_asked": ["fetch"], "rebuild": ["fetch", "report"], "skipped": []}
    ti = FakeTaskInstance("d", "report", "run-2", plan)
    context = {
        "ti": ti,
        "run_id": "run-2",
        "params": {"rebuild": ["fetch"]},
        "outlet_events": defaultdict(object),
    }
    report.execute(context)  # rebuilt: downstream of a task asked
    assert ti.pulled == [REBUILD_XCOM]
    assert ti.pushed[RECORD_XCOM]["generation"] == 1


def test_a_secret_in_the_rendered_command_is_recorded_masked_but_the_command_sees_it(tmp_path):
    """A command rendered from a Variable holds the secret: the command runs with it,
    while the success record (store, XCom, ``alamode status``) shows it as Airflow's
    Rendered Template tab does, ``***``; the output ID is the spec's, template and all."""
    from airflow.sdk.log import mask_secret  # what a Variable read calls

    secret = "alamode-s3cr3t-value"
    mask_secret(secret, "api_token")  # what reading Variable api_token in a template does
    dag = Dag({})
    spec = {"command": 'echo "{{ var.value.api_token }}" > "$ALAMODE_OUTPUT/out.txt"'}
    dag.task("call", spec)
    task = load(dag.bencode())["call"]
    store = OutputStore(str(tmp_path / "store"))
    op = operator(task, store, tmp_path)
    op.command = f'echo "{secret}" > "$ALAMODE_OUTPUT/out.txt"'  # as Airflow renders it
    record = run(op, "d", "run-1")
    assert record["command"] == 'echo "***" > "$ALAMODE_OUTPUT/out.txt"'
    assert (Path(store.where(task.output)) / "out.txt").read_text() == secret + "\n"
    assert store.lookup(task.output).record.command == record["command"]
    # The output ID hashes the spec (the preimage), which holds the template, not its value.
    preimage = base64.b64decode(record["preimage_b64"])
    assert hashlib.sha256(preimage).hexdigest() == record["output_id"] == task.output
    assert b"{{ var.value.api_token }}" in preimage
    assert secret not in json.dumps(record)
