"""OpenLineage lineage of the engine's tasks: datasets named by output ID, the
generation and manifest of each output, the generations read, and a cached task's
output marked reused, with facets valid against the schemas the package ships."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from jsonschema import Draft202012Validator
from openlineage.client.serde import Serde

from a_la_mode import Dag, load
from a_la_mode.partitions import partition_id, timestamp
from alamode_airflow import openlineage as ol
from alamode_airflow._compat import AirflowSkipException
from alamode_airflow.manifests import ManifestEntry, manifest
from alamode_airflow.operators import AlamodeCommandOperator
from alamode_airflow.store import Committed, OutputStore
from tests.unit.openlineage_spec import package_schemas, problems
from tests.unit.test_records import record

RUN = "manual__2026-01-01"


class FakeTaskInstance:
    """What the provider hands ``..._on_complete``: the attempt and its context."""

    def __init__(self, dag_id: str, task_id: str, run_id: str, try_number: int = 1) -> None:
        self.dag_id, self.task_id, self.run_id = dag_id, task_id, run_id
        self.try_number, self.map_index, self.pushed = try_number, -1, {}

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value

    def get_template_context(self) -> dict:
        return {"ti": self, "run_id": self.run_id, "params": {}}


def execute(op: AlamodeCommandOperator, run_id: str, dag_id: str = "d") -> FakeTaskInstance:
    ti = FakeTaskInstance(dag_id, op.task_id, run_id)
    context = {**ti.get_template_context(), "outlet_events": defaultdict(object)}
    try:
        op.execute(context)
    except AirflowSkipException:
        ti.skipped = True
    return ti


@pytest.fixture
def pipeline(tmp_path):
    dag = Dag({})
    fetch = dag.task("fetch", {"command": 'echo v1 > "$ALAMODE_OUTPUT/out.txt"', "sha": "1a"})
    report = dag.task("report", {"command": 'cp "$ALAMODE_INPUT_FETCH/out.txt" "$ALAMODE_OUTPUT"'})
    fetch >> report
    store = OutputStore(str(tmp_path / "store"))
    tasks = load(dag.bencode())
    ops = {
        task.name: AlamodeCommandOperator(
            task_id=task.name,
            output_id=task.output,
            inputs=task.inputs,
            preimage_source=task.preimage,
            command=task.spec["command"],
            sha=task.spec.get("sha"),
            cwd=str(tmp_path),
            storage_root=store.url,
        )
        for task in tasks
    }
    return tasks, ops, store


def as_event(lineage, event_type: str = "COMPLETE") -> dict:
    """The lineage as the provider sends it, in a run event (its facets serialized
    as the client does)."""
    return {
        "eventTime": "2026-01-01T00:00:00+00:00",
        "producer": "https://example.com/producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "eventType": event_type,
        "run": {"runId": "0192b6a2-7e46-7a1e-9d3b-5c2f6a0e4d11", "facets": {}},
        "job": {
            "namespace": "default",
            "name": "d.t",
            "facets": {k: Serde.to_dict(f) for k, f in lineage.job_facets.items()},
        },
        "inputs": [Serde.to_dict(d) for d in lineage.inputs],
        "outputs": [Serde.to_dict(d) for d in lineage.outputs],
    }


def test_a_produced_output_is_named_by_id_with_its_generation_and_what_it_read(pipeline):
    tasks, ops, store = pipeline
    execute(ops["fetch"], RUN)
    ti = execute(ops["report"], RUN)
    event = as_event(ops["report"].get_openlineage_facets_on_complete(ti))
    assert problems(event) == []
    [output] = event["outputs"]
    assert output["namespace"] == f"file://{store.root.path}"
    assert output["name"] == f"objects/{tasks['report'].output}"
    facet = output["facets"]["alamode_output"]
    assert facet["outputId"] == tasks["report"].output
    assert (facet["generation"], facet["files"], facet["bytes"]) == (0, 1, 3)
    assert facet["reused"] is False
    assert facet["producedBy"]["runId"] == RUN
    [read] = event["inputs"]
    assert read["name"] == f"objects/{tasks['fetch'].output}"
    assert read["inputFacets"]["alamode_input"] == {
        **read["inputFacets"]["alamode_input"],
        "task": "fetch",
        "outputId": tasks["fetch"].output,
        "generation": 0,
    }
    job = event["job"]["facets"]["alamode_job"]
    assert (job["outputId"], job["partitioned"]) == (tasks["report"].output, False)


def test_a_cached_task_reports_the_recorded_output_as_reused_and_who_made_it(pipeline):
    _, ops, _ = pipeline
    execute(ops["fetch"], RUN)
    again = execute(ops["fetch"], "manual__2026-01-02", dag_id="other")
    assert again.skipped
    event = as_event(ops["fetch"].get_openlineage_facets_on_complete(again))
    assert problems(event) == []
    facet = event["outputs"][0]["facets"]["alamode_output"]
    assert facet["reused"] is True
    assert facet["producedBy"]["dagId"] == "d"
    assert facet["producedBy"]["runId"] == RUN
    assert event["job"]["facets"]["alamode_job"]["sha"] == "1a"


def commit_next(store: OutputStore, output_id: str, run_id: str) -> None:
    """Another run's rebuild of ``output_id``: its next generation, committed."""
    current = store.lookup(output_id)
    staging = store.stage(output_id)
    (staging / "data" / "out.txt").write_text("rebuilt\n")
    made = replace(
        current.record,
        run_id=run_id,
        generation=current.next_generation,
        rebuilt=True,
        data_path=store.data_path(staging),
        manifest=manifest(staging / "data"),
    )
    assert store.commit(staging, made) is Committed.COMMITTED


def store_reads(store: OutputStore) -> list[str]:
    """The listings and record reads of ``store`` from now on: each a request (LIST,
    GET) on an object store."""
    calls: list[str] = []

    def counting(name: str, method):
        def counted(*args, **kwargs):
            calls.append(name)
            return method(*args, **kwargs)

        return counted

    for name in ("listing", "listings", "read_record"):
        setattr(store.backend, name, counting(name, getattr(store.backend, name)))
    return calls


@pytest.mark.parametrize("reused", [False, True], ids=["produced", "skipped"])
def test_complete_names_the_generation_the_attempt_had_without_a_lookup(pipeline, reused):
    """A rebuild committing between this attempt's commit (or the skip that found the
    output) and its COMPLETE event does not make the event name the newer generation;
    the store is not read."""
    tasks, ops, store = pipeline
    ti = execute(ops["fetch"], RUN)
    if reused:  # another DAG's attempt finds the output recorded and skips
        ti = execute(ops["fetch"], "manual__2026-01-02", dag_id="other")
        assert ti.skipped
    commit_next(store, tasks["fetch"].output, "manual__rebuild")
    reads = store_reads(ops["fetch"]._store)
    event = as_event(ops["fetch"].get_openlineage_facets_on_complete(ti))
    facet = event["outputs"][0]["facets"]["alamode_output"]
    assert (facet["generation"], facet["reused"], facet["producedBy"]["runId"]) == (0, reused, RUN)
    assert reads == []


def test_start_and_failure_name_the_datasets_without_claiming_a_generation(pipeline):
    tasks, ops, _ = pipeline
    ti = FakeTaskInstance("d", "report", RUN)
    event = as_event(ops["report"].get_openlineage_facets_on_failure(ti), "FAIL")
    assert problems(event) == []
    assert [d["name"] for d in event["outputs"]] == [f"objects/{tasks['report'].output}"]
    assert [d["name"] for d in event["inputs"]] == [f"objects/{tasks['fetch'].output}"]
    assert event["outputs"][0]["facets"] == {}
    assert event["inputs"][0]["inputFacets"] == {}


def test_output_fields_say_reused_unless_this_attempt_committed_it():
    made = record(manifest=(ManifestEntry("a", 2, "0" * 64), ManifestEntry("b", 5, "1" * 64)))
    mine = ol.output_fields(made, ("d", "r", "t", 1))
    assert (mine["reused"], mine["files"], mine["bytes"]) == (False, 2, 7)
    assert ol.output_fields(made, ("d", "r", "t", 2))["reused"] is True  # a later try
    assert ol.output_fields(made, ("e", "r", "t", 1))["reused"] is True
    assert ol.input_fields(made) == {
        "ab" * 32: {"task": "up", "outputId": "ab" * 32, "generation": 2}
    }


def test_the_manifest_digest_changes_with_any_file_and_is_canonical():
    entries = (ManifestEntry("a", 2, "0" * 64), ManifestEntry("b", 5, "1" * 64))
    digest = ol.manifest_digest(entries)
    text = '[{"path":"a","sha256":"' + "0" * 64 + '","size":2},{"path":"b","sha256":"'
    text += "1" * 64 + '","size":5}]'
    assert digest == hashlib.sha256(text.encode()).hexdigest()
    assert ol.manifest_digest((entries[0], replace(entries[1], size=6))) != digest
    assert ol.manifest_digest((entries[0], replace(entries[1], link="x"))) != digest


def test_a_partitioned_task_names_the_output_and_inputs_of_the_run_s_interval():
    file_id, up = "cd" * 32, "ab" * 32
    task = SimpleNamespace(
        task_id="t",
        output_id=file_id,
        partitioned=True,
        inputs={"up": up, "static": "ef" * 32},
        partitioned_inputs=frozenset({"up"}),
    )
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    context = {"run_id": RUN, "data_interval_start": start, "data_interval_end": end}
    target, inputs = ol.output_ids(task, context)
    interval = (timestamp(start), timestamp(end))
    assert target == partition_id(file_id, *interval) != file_id
    assert inputs == {"up": partition_id(up, *interval), "static": "ef" * 32}


def test_a_local_root_is_one_namespace_whichever_worker_names_it(tmp_path, monkeypatch):
    """Workers sharing one volume have their own hostnames (docker compose): the
    namespace names the root alone, so one output is one dataset and its edges join."""
    store = OutputStore(str(tmp_path / "store"))
    seen = set()
    for host in ("worker-1a2b", "worker-3c4d"):
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        seen.add(ol.namespace(store))
    assert seen == {f"file://{tmp_path}/store"}
    monkeypatch.chdir(tmp_path)
    assert ol.namespace(OutputStore("store")) == f"file://{tmp_path}/store"


def test_the_namespace_setting_names_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__OPENLINEAGE_NAMESPACE", "file://shared-volume")
    assert ol.namespace(OutputStore(str(tmp_path / "store"))) == "file://shared-volume"
    assert ol.namespace(OutputStore("s3://bucket/prefix")) == "file://shared-volume"


def test_an_object_store_s_namespace_is_its_url():
    assert ol.namespace(OutputStore("s3://bucket/prefix/")) == "s3://bucket/prefix"
    assert ol.namespace(OutputStore("s3://bucket")) == "s3://bucket"


def test_a_facet_its_schema_refuses_is_reported():
    from alamode_airflow.openlineage_facets import lineage

    job = ol.job_fields("cd" * 32, None, None, False)
    bad = {**ol.output_fields(record(), ("d", "r", "t", 1)), "generation": -1}
    event = as_event(lineage("file://h/r", "cd" * 32, {}, job, bad, {}))
    assert any("alamode_output" in line and "-1" in line for line in problems(event))


def test_the_shipped_schemas_are_json_schema_with_ids_the_facets_name():
    schemas = package_schemas()
    assert len(schemas) == 3
    for uri, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        [name] = schema["$defs"]
        assert ol.schema_url(name) == f"{uri}#/$defs/{name}"


def test_parsing_imports_neither_the_provider_nor_the_client():
    # Airflow itself reads every installed provider's get_provider_info: not ours.
    code = (
        "import sys, alamode_airflow.operators, alamode_airflow.factory;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage'"
        " or m.startswith(('airflow.providers.openlineage.extractors',"
        " 'airflow.providers.openlineage.plugins', 'alamode_airflow.openlineage_'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "OpenLineageMixin" in [c.__name__ for c in AlamodeCommandOperator.__mro__]
