"""Filling a store the way the engine does, without Airflow: for tests of what reads it."""

from __future__ import annotations

import base64

from alamode_airflow.manifests import manifest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import OutputStore


def produce(store: OutputStore, pipeline, run_id: str, names=None, end: str | None = None) -> None:
    """Commit each task's output as the engine does (staging, record, rename)."""
    for task in pipeline:
        if names is not None and task.name not in names:
            continue
        staging = store.stage(task.output)
        (staging / "data" / "out.txt").write_text(f"{task.name} {run_id}")
        record = SuccessRecord(
            output_id=task.output,
            dag_id="collage",
            task=task.name,
            run_id=run_id,
            try_number=1,
            start=f"{run_id}T00:00:00",
            end=end or f"{run_id}T00:00:01+00:00",
            duration_s=1.0,
            command=task.spec["command"],
            image=task.spec.get("image"),
            sha=task.spec.get("sha"),
            inputs=dict(task.inputs),
            preimage_b64=base64.b64encode(task.preimage()).decode(),
            host="test",
            manifest=manifest(staging / "data"),
        )
        store.commit(staging, record)
