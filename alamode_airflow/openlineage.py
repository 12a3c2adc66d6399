"""OpenLineage for the engine's tasks: every event names outputs by their output IDs.

With ``alamode-airflow[openlineage]`` (Airflow's OpenLineage provider) installed and a
transport configured (``[openlineage] transport``), the provider's listener asks each
running operator for its lineage through ``get_openlineage_facets_on_start``,
``..._on_complete`` and ``..._on_failure``; ``OpenLineageMixin`` answers for
``AlamodeOperator``. Without a transport the provider registers no listener and
nothing here runs.

What a task's events carry:

- **job** facet ``alamode_job``: the task's output ID in the file (the sha256 of its
  spec and its inputs' IDs: the spec's digest), the spec's ``sha`` and ``image`` when
  it has them, and whether the task is partitioned.
- **output**: one dataset. Its namespace is the store (``[alamode]
  openlineage_namespace`` if set, else ``file://<absolute root>`` for a local root, the
  root's URL such as ``s3://bucket/prefix`` otherwise) and its name
  ``objects/<output id>``, the run's output ID (a partitioned task's, per interval).
  On COMPLETE it carries ``alamode_output``, from the success record the attempt
  committed, or found current and skipped on (the store is read again only when
  another attempt's commit came first): the generation, the manifest's digest, files
  and bytes, whether this attempt produced it or reused it, and the run that produced
  it. A rebuild committed meanwhile changes none of it.
- **inputs**: one dataset per input, named the same way; on COMPLETE each carries
  ``alamode_input`` with the input's task name and the generation the record read.

A task that finds its output current raises ``AirflowSkipException``; for a skipped
task the provider emits a COMPLETE event built from ``..._on_complete``, so a cached
task's COMPLETE names the recorded output with ``reused: true`` and ``producedBy``
(the run, task and try that committed it), and the inputs that output was made from.
Tasks the plan task marks skipped never start: no process of theirs runs, so they emit
no event (the plan's log names the run that produced each one). START and FAIL events
name the datasets only: before a commit, or after a failure, no generation is ours.

Each custom facet's ``_schemaURL`` is the ``$id`` of a JSON Schema shipped in the
package (``openlineage_schemas/``), built on the OpenLineage 2-0-2 base facets.

The provider and the OpenLineage client are imported only when the provider asks (the
facet classes live in ``openlineage_facets``): parsing a DAG imports neither, and
Airflow without the provider works as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from alamode_airflow.manifests import ManifestEntry
from alamode_airflow.records import SuccessRecord
from alamode_airflow.runs import RunInfo, interval_of
from alamode_airflow.store import OutputStore

#: Names the producer in every custom facet (``_producer``).
PRODUCER = "https://alamode-airflow.invalid/openlineage"
#: Where the facet schemas are identified: each ``$id`` is SCHEMAS + its file's name.
SCHEMAS = "https://alamode-airflow.invalid/openlineage/schemas/1-0-0/"
#: The facet names, under the OpenLineage rule that custom facets carry a prefix.
JOB_FACET, OUTPUT_FACET, INPUT_FACET = "alamode_job", "alamode_output", "alamode_input"


def schema_url(name: str) -> str:
    """The ``_schemaURL`` of facet class ``name``: its definition in its own schema."""
    return f"{SCHEMAS}{name}.json#/$defs/{name}"


def namespace(store: OutputStore) -> str:
    """The store as an OpenLineage namespace: ``[alamode] openlineage_namespace`` when
    set; else ``file://<absolute root>`` for a local root, else the root's URL. No host
    in it: the workers sharing a volume each have their own (random, in containers), and
    one output must be one dataset for its edges to join; deployments whose roots share
    a path but not their files tell them apart with the setting."""
    from alamode_airflow import settings

    configured = settings.get("openlineage_namespace")
    if configured:
        return configured
    if store.local:
        return f"file://{os.path.abspath(store.root.path)}"
    return store.url.rstrip("/")


def dataset_name(output_id: str) -> str:
    """An output's dataset name: its folder relative to the store's root."""
    return f"objects/{output_id}"


def manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    """The sha256 of the manifest as canonical JSON (entries in manifest order, keys
    sorted, no spaces): equal digests mean equal files, paths and links."""
    text = json.dumps([entry.to_json() for entry in entries], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def job_fields(output_id: str, sha: str | None, image: str | None, partitioned: bool) -> dict:
    """The ``alamode_job`` facet's fields (``sha`` and ``image`` only when set)."""
    fields: dict[str, Any] = {"outputId": output_id, "partitioned": partitioned}
    if sha is not None:
        fields["sha"] = sha
    if image is not None:
        fields["image"] = image
    return fields


def output_fields(record: SuccessRecord, attempt: tuple[str, str, str, int]) -> dict:
    """The ``alamode_output`` facet's fields from an output's success record;
    ``attempt`` is (dag_id, run_id, task_id, try_number) of the task reporting it: the
    output is ``reused`` unless that attempt committed it."""
    made_by = (record.dag_id, record.run_id, record.task, record.try_number)
    return {
        "outputId": record.output_id,
        "generation": record.generation,
        "manifestDigest": manifest_digest(record.manifest),
        "files": len(record.manifest),
        "bytes": sum(entry.size for entry in record.manifest),
        "reused": made_by != tuple(attempt),
        "producedBy": {
            "dagId": record.dag_id,
            "runId": record.run_id,
            "task": record.task,
            "tryNumber": record.try_number,
            "end": record.end,
        },
    }


def input_fields(record: SuccessRecord) -> dict[str, dict]:
    """Per input output ID: the ``alamode_input`` facet's fields (its task name in the
    producing pipeline, the generation read), as the record names them."""
    return {
        output_id: {
            "task": name,
            "outputId": output_id,
            "generation": record.read_generation(name),
        }
        for name, output_id in sorted(record.inputs.items())
    }


def output_ids(task: Any, context: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(the run's output ID of ``task``, its inputs' run output IDs by name)."""
    run = RunInfo(context["run_id"], interval_of(context), frozenset())
    target = run.output_id(task.task_id, task.output_id, task.partitioned)
    inputs = {
        name: run.output_id(name, oid, name in task.partitioned_inputs)
        for name, oid in task.inputs.items()
    }
    return target, inputs


class OpenLineageMixin:
    """The provider's operator interface for ``AlamodeOperator`` (see the module
    docstring for what each event carries). Uses the operator's ``output_id``,
    ``inputs``, ``partitioned``, ``partitioned_inputs``, ``sha``, ``image`` and
    ``storage_root``, and the store ``execute`` opened (``_store``) when there is one."""

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow.sdk import get_current_context  # set while the listener runs

        return self._lineage(get_current_context(), attempt=None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        ti = task_instance
        attempt = (ti.dag_id, ti.run_id, ti.task_id, ti.try_number)
        return self._lineage(ti.get_template_context(), attempt=attempt)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._lineage(task_instance.get_template_context(), attempt=None)

    def _lineage(self, context: Mapping[str, Any], attempt: tuple | None) -> Any:
        """The task's lineage; with ``attempt`` (a finished one), the output's record
        fills the facets: the one ``execute`` committed or found current and skipped on
        (``_lineage_record``), else the one current now (another attempt committed
        first: one lookup, only when OpenLineage asks)."""
        from alamode_airflow import openlineage_facets as facets

        store = getattr(self, "_store", None) or OutputStore.configured(self.storage_root)
        target, inputs = output_ids(self, context)
        record = None
        if attempt is not None:
            record = _kept_record(self, target) or _current_record(store, target)
        return facets.lineage(
            namespace(store),
            target,
            inputs,
            job_fields(self.output_id, self.sha, self.image, self.partitioned),
            output_fields(record, attempt) if record else None,
            input_fields(record) if record else {},
        )


def _kept_record(task: Any, target: str) -> SuccessRecord | None:
    """The record this attempt's ``execute`` kept for ``target``: its own commit's, or
    the one it skipped on. Reading the store again would cost a LIST and a GET on an
    object store per task, and could find a generation committed since (a rebuild),
    reported as this attempt's output."""
    kept = getattr(task, "_lineage_record", None)
    return kept if kept is not None and kept.output_id == target else None


def _current_record(store: OutputStore, target: str) -> SuccessRecord | None:
    found = store.lookup(target)
    return found.record if found.done else None
