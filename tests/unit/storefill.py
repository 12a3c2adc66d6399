"""Filling a store the way the engine does, without Airflow: for tests of what reads it."""

from __future__ import annotations

import base64

from a_la_mode import Dag, load
from a_la_mode.partitions import partition_id
from alamode_airflow.manifests import manifest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import OutputStore


def produce(
    store: OutputStore, pipeline, run_id: str, names=None, end: str | None = None, interval=None
) -> None:
    """Commit each task's output as the engine does (staging, record, rename); with an
    ``interval`` (start, end), every task is one partitioned by it."""
    outputs = {task.name: task.output for task in pipeline}
    if interval is not None:
        outputs = {name: partition_id(oid, *interval) for name, oid in outputs.items()}
    for task in pipeline:
        if names is not None and task.name not in names:
            continue
        staging = store.stage(outputs[task.name])
        (staging / "data" / "out.txt").write_text(f"{task.name} {run_id}")
        record = SuccessRecord(
            output_id=outputs[task.name],
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
            inputs={name: outputs[name] for name in task.inputs},
            input_generations={n: store.lookup(outputs[n]).generation for n in task.inputs},
            input_digests={n: store.lookup(outputs[n]).record.digest for n in task.inputs},
            file_output_id=task.output if interval else None,
            interval=interval,
            data_path=store.data_path(staging),
            preimage_b64=base64.b64encode(task.preimage()).decode(),
            host="test",
            manifest=manifest(staging / "data"),
        )
        store.commit(staging, record)


def diamond_ladder(levels: int, name: str = "ladder"):
    """top0 -> (l0, r0) -> top1 -> (l1, r1) -> ... -> top<levels>: 2**levels paths."""
    dag = Dag({"dag_id": name})
    top = dag.task("top0", {"command": "echo top0"})
    for level in range(levels):
        sides = [dag.task(f"{side}{level}", {"command": f"echo {side}{level}"}) for side in "lr"]
        joined = dag.task(f"top{level + 1}", {"command": f"echo top{level + 1}"})
        top >> sides >> joined
        top = joined
    return load(dag.bencode())
