"""The plan of a fully cached DAG: is the generation check free?

Run it with ``PYTHONPATH=. .venv/bin/python benchmarks/plan.py`` from the repo root (``--tasks N``,
default 200; ``--runs N``, default 31, the median is printed).

A store is filled as the engine fills it: every task of a layered random pipeline
(1-3 inputs each) committed once, each record naming the generation of every input it
read. Then, on the same warm store, in alternating order:

- baseline: one ``settle`` per output, as the plan did before records named input
  generations (done or not, nothing else);
- plan: ``currency.assess``, the plan task's pass today: the same one lookup per
  output, plus each record's input generations compared with its inputs' verdicts.

The difference is what the staleness check costs; it adds no lookup per input.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import statistics
import sys
import tempfile
from pathlib import Path

from report import timed
from shapes import random_layered

from a_la_mode import Dag, load
from alamode_airflow.currency import assess
from alamode_airflow.manifests import ManifestEntry, manifest, manifest_digest
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import OutputStore


def pipeline(n: int):
    dag = Dag({"dag_id": "plan_bench"})
    graph = random_layered(n)
    for name in graph:
        dag.task(name, {"command": f"echo {name}"})
    for name, deps in graph.items():
        for dep in deps:
            dag[dep] >> dag[name]
    return load(dag.bencode())


def out_files(task) -> tuple[ManifestEntry, ...]:
    """What ``fill`` leaves in a task's output: ``out.txt``, holding the task's name."""
    data = task.name.encode()
    return (ManifestEntry("out.txt", len(data), hashlib.sha256(data).hexdigest()),)


def record_of(
    task, tasks, files, *, dag_id: str = "plan_bench", data_path: str = "data", digests=False
):
    """The success record the engine writes for ``task`` of ``tasks``, holding ``files``;
    with ``digests``, naming what each input holds (``out_files``), as the engine does."""
    read = {name: manifest_digest(out_files(tasks[name])) for name in task.inputs if digests}
    return SuccessRecord(
        output_id=task.output,
        dag_id=dag_id,
        task=task.name,
        run_id="fill",
        try_number=1,
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:01+00:00",
        duration_s=1.0,
        command=task.spec["command"],
        image=None,
        sha=None,
        inputs={name: tasks[name].output for name in task.inputs},
        input_generations={name: 0 for name in task.inputs},
        input_digests=read,
        preimage_b64=base64.b64encode(task.preimage()).decode(),
        host="bench",
        manifest=files,
        data_path=data_path,
    )


def fill(store: OutputStore, tasks) -> None:
    for task in tasks:
        staging = store.stage(task.output)
        (staging / "data" / "out.txt").write_text(task.name)
        record = record_of(task, tasks, manifest(staging / "data"), digests=True)
        store.commit(staging, record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=31)
    args = parser.parse_args(argv)
    tasks = pipeline(args.tasks)
    with tempfile.TemporaryDirectory(prefix="alamode-bench-plan-") as root:
        store = OutputStore(str(Path(root) / "store"))
        fill(store, tasks)
        outputs = {task.name: task.output for task in tasks}
        inputs = {task.name: list(task.inputs) for task in tasks}

        def baseline():
            assert all(store.settle(oid, print).done for oid in outputs.values())

        def plan():
            verdicts = assess(outputs, inputs, functools.partial(store.lookup_all, warn=print))
            assert all(v.current for v in verdicts.values())

        found = {oid: store.lookup(oid) for oid in outputs.values()}

        def check_only():
            assess(outputs, inputs, lambda ids: {oid: found[oid] for oid in ids})

        times: dict[str, list[float]] = {"baseline": [], "plan": [], "check": []}
        for run in range(args.runs):
            order = [("baseline", baseline), ("plan", plan)]
            for label, step in order if run % 2 else reversed(order):
                times[label].append(timed(step))
            times["check"].append(timed(check_only))
    base, ours, check = (statistics.median(times[k]) * 1000 for k in ("baseline", "plan", "check"))
    print(f"fully cached plan, {args.tasks} tasks, local root, median of {args.runs} runs")
    print(f"  baseline (one lookup per output)      {base:8.1f} ms")
    print(f"  plan (lookup + input generations)     {ours:8.1f} ms  ({ours / base:.2f}x)")
    share = f"{check / base:.1%} of baseline"
    print(f"  the check alone (lookups answered)    {check:8.1f} ms  ({share})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
