"""``rebuild``: does expanding the asked tasks to everything downstream stay linear?

Run it from the repo root with ``PYTHONPATH=. .venv/bin/python benchmarks/rebuild.py``
(``--tasks N``, default 10000; ``--runs N``, default 5, the median is printed; ``--before-max N``,
default 2000: the largest chain the former expansion is timed on).

A chain of N tasks is encoded and built into a DAG by the factory, as the loader does.
Then, on that DAG, in alternating order:

- baseline: ``inputs()``, the plan's one pass reading each task's upstream tasks (it
  does it whatever is rebuilt: the floor of any expansion);
- plan, ``rebuild: all`` and ``rebuild: [first task]``: what the plan task does to find
  the tasks to rebuild, the pass included (``all`` needs no expansion; the first task of
  a chain reaches every other task through it);
- a task, ``rebuild: [first task]``: what the chain's last task does to tell from the
  plan's small XCom whether it rebuilds (``runs.rebuilds_for``: one walk up its DAG);
- before, ``rebuild: all``: the former expansion, Airflow's ``get_flat_relative_ids``
  once per asked task, timed up to ``--before-max`` tasks (it is quadratic).

Also printed: the bytes of the plan's XCom that each task needs to tell whether it
rebuilds, beside the whole rebuild list the plan also passes today.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from report import timed
from shapes import chain

from a_la_mode import Dag, load
from alamode_airflow.factory import build_dag
from alamode_airflow.plan import PLAN_TASK
from alamode_airflow.runs import rebuilds_for


def built(n: int, folder: Path):
    dag = Dag({"dag_id": "rebuild_bench"})
    graph = chain(n)
    for name in graph:
        dag.task(name, {"command": f"echo {name}"})
    for name, deps in graph.items():
        for dep in deps:
            dag[dep] >> dag[name]
    path = folder / "rebuild_bench.alamode"
    dag.save(path)
    return build_dag(load(path), path, storage_root=str(folder / "store"))


def context(asked) -> dict:
    return {"dag_run": SimpleNamespace(conf={"rebuild": asked}), "params": {}}


def before(plan, asked: list[str]) -> frozenset[str]:
    """The expansion as the plan did it: every asked task's descendants, one walk each."""
    expanded = set(asked)
    for name in asked:
        expanded |= plan.dag.get_task(name).get_flat_relative_ids(upstream=False)
    return frozenset(expanded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before-max", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="alamode-bench-rebuild-") as root:
        plan = built(args.tasks, Path(root)).get_task(PLAN_TASK)
    names = list(plan.outputs)
    steps = {
        "baseline": plan.inputs,
        "all": lambda: plan.rebuilds(context("all"), plan.inputs()),
        "first": lambda: plan.rebuilds(context([names[0]]), plan.inputs()),
        "task": lambda: rebuilds_for(plan.dag.get_task(names[-1]), {"rebuild_asked": names[:1]}),
    }
    if args.tasks <= args.before_max:
        steps["before"] = lambda: before(plan, names)
    assert plan.rebuilds(context([names[0]]), plan.inputs())[1] == frozenset(names)
    times: dict[str, list[float]] = {label: [] for label in steps}
    for run in range(args.runs):
        order = list(steps.items())
        for label, step in order if run % 2 else reversed(order):
            times[label].append(timed(step))
    median = {label: statistics.median(values) for label, values in times.items()}
    base = median["baseline"]
    print(f"rebuild expansion, chain of {args.tasks} tasks, median of {args.runs} runs")
    print(f"  baseline (one pass over the inputs)     {base * 1000:9.1f} ms")
    for label, text in (("all", "rebuild: all"), ("first", f"rebuild: [{names[0]}]")):
        print(f"  plan, {text:<33} {median[label] * 1000:9.1f} ms  ({median[label] / base:.2f}x)")
    task = median["task"]
    label = f"a task's own walk, rebuild: [{names[0]}]"
    print(f"  {label:<39} {task * 1000:9.1f} ms  ({task / base:.2f}x)")
    if "before" in median:
        print(
            f"  before, rebuild: all (one walk a task) {median['before'] * 1000:9.1f} ms  "
            f"({median['before'] / base:.2f}x)"
        )
    else:
        print(f"  before, rebuild: all: not timed above --before-max {args.before_max} tasks")
    small, whole = len(json.dumps(["all"])), len(json.dumps(sorted(names)))
    print(f"  XCom a task needs: rebuild_asked {small} bytes, beside the list {whole} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
