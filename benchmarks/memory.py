"""Peak memory of the DAG processor's parse and of the plan, beside their baselines.

Run it with ``PYTHONPATH=. .venv/bin/python benchmarks/memory.py`` from the repo root
(``--tasks`` sizes, default ``1000 10000``; ``--why`` adds where each process's memory
goes, from ``tracemalloc``, which slows it down). Scratch files go to the temp folder
(``alamode-bench-memory``).

Each figure is the peak resident set (``VmHWM``) of a fresh process doing one thing:

1. Parse: a folder holding one encoded file of N tasks (a seeded random layered DAG)
   and its generated DAG file, against a folder holding a hand-written DAG file of
   BashOperators with the same tasks, edges and command strings. The process
   pre-imports the ``airflow.*`` modules the file names (as the DAG processor's
   manager does before it forks a parser), then runs ``DagBag`` on the folder and the
   serialization the DAG processor does next. ``floor`` is the resident set after the
   pre-import, the same for both; ``growth`` is the peak less the floor.
2. Plan: ``currency.assess`` with the plan task's ``lookup_all`` over a fully cached local
   store of the same N outputs (as ``plan.py`` fills it), in a process that has
   imported the engine and loaded the encoded file. Its baselines: the same process
   just before the plan (``before``), and the hand-written DAG's parse.

There is no target: these are printed for their trend, beside what Airflow costs for
the same DAG written by hand. With ``--why`` every figure is larger (tracemalloc keeps
a trace per block) and the lines listed are where the memory still held at the end was
allocated: read the sizes from a run without it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine import child_json, parse_homes, save_encoded, write_handwritten
from plan import fill
from report import table
from shapes import random_layered

from a_la_mode import load
from alamode_airflow.dag_module import write_module
from alamode_airflow.store import OutputStore
from loopback.airflow_cli import AirflowHome

SCRATCH = Path(tempfile.gettempdir()) / "alamode-bench-memory"
SIZES = (1000, 10000)
NO_TIMEOUT = (("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "3600"),)

# Shared by both children: the resident set now and its peak so far, in MiB, and
# where memory goes (tracemalloc, when asked: the biggest allocating lines).
COMMON = """
import json, sys, tracemalloc
from pathlib import Path
WHY = sys.argv[2] == "why"
if WHY:
    tracemalloc.start(1)

def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}

def top(limit=12):
    if not WHY:
        return []
    stats = tracemalloc.take_snapshot().statistics("lineno")[:limit]
    return [f"{s.size / 2**20:7.1f} MiB {s.count:8d} blocks  {s.traceback[0]}" for s in stats]
"""

# The DAG processor's parse of a folder (see engine.py's PARSE_CHILD).
PARSE_CHILD = (
    COMMON
    + """
from airflow.dag_processing.dagbag import DagBag
from airflow.dag_processing.processor import _pre_import_airflow_modules
from airflow.serialization.serialized_objects import DagSerialization
import structlog
folder = Path(sys.argv[1])
for py in folder.glob("*.py"):
    _pre_import_airflow_modules(str(py), structlog.get_logger())
floor = memory()["VmRSS"]
bag = DagBag(dag_folder=str(folder), load_op_links=False)
serialized = [DagSerialization.to_dict(dag) for dag in bag.dags.values()]
tasks = sum(len(dag.tasks) for dag in bag.dags.values())
errors = {str(k): v for k, v in bag.import_errors.items()}
print(json.dumps({"floor": floor, "peak": memory()["VmHWM"], "tasks": tasks,
                  "errors": errors, "top": top()}))
"""
)

# The plan task's pass over a fully cached store.
PLAN_CHILD = (
    COMMON
    + """
from a_la_mode import load
import functools
from alamode_airflow.currency import assess
from alamode_airflow.store import OutputStore
encoded, root = Path(sys.argv[1]), sys.argv[3]
pipeline = load(encoded)
outputs = {task.name: task.output for task in pipeline}
inputs = {task.name: list(task.inputs) for task in pipeline}
store = OutputStore(root)
before = memory()["VmRSS"]
verdicts = assess(outputs, inputs, functools.partial(store.lookup_all, warn=print))
assert all(v.current for v in verdicts.values()), "not every output is current"
print(json.dumps({"before": before, "peak": memory()["VmHWM"], "tasks": len(verdicts),
                  "top": top()}))
"""
)


def child(home: AirflowHome, code: str, *args: str) -> dict[str, Any]:
    result = child_json(home, code, *args)
    if result.get("errors"):
        raise RuntimeError(f"import errors parsing {args[0]}: {result['errors']}")
    return result


def measure(root: Path, n: int, why: bool) -> dict[str, Any]:
    """The three processes for N tasks: parse ours, parse hand-written, plan."""
    graph = random_layered(n)
    ours, hand = root / f"ours_{n}", root / f"hand_{n}"
    for folder in (ours, hand):
        folder.mkdir(parents=True)
    encoded = save_encoded(graph, f"ours_{n}", ours / f"ours_{n}.alamode")
    pipeline = load(encoded)
    write_module(encoded, pipeline)  # its DAG file, as `alamode encode --dags-folder`
    write_handwritten(graph, f"hand_{n}", hand / f"hand_{n}.py")
    store = root / f"store_{n}"
    print(f"memory: filling a store of {n} outputs ...", file=sys.stderr, flush=True)
    fill(OutputStore(str(store)), pipeline)
    cached, _ = parse_homes(root)
    # Memory, not time: a parse slowed by a busy machine must not hit Airflow's timeout.
    home = replace(cached, extra_env=(*cached.extra_env, *NO_TIMEOUT))
    mode = "why" if why else "-"
    print(f"memory: {n} tasks: parse and plan ...", file=sys.stderr, flush=True)
    return {
        "tasks": n,
        "ours": child(home, PARSE_CHILD, str(ours), mode),
        "hand": child(home, PARSE_CHILD, str(hand), mode),
        "plan": child(home, PLAN_CHILD, str(encoded), mode, str(store)),
    }


def report(rows: list[dict[str, Any]]) -> str:
    header = ["tasks", "process", "peak MiB", "baseline", "baseline MiB", "ratio"]
    body = []
    for r in rows:
        n, ours, hand, plan = str(r["tasks"]), r["ours"], r["hand"], r["plan"]
        grown = ours["peak"] - ours["floor"], hand["peak"] - hand["floor"]
        planned = plan["peak"] - plan["before"]
        lines = [
            ("DAG processor parse", ours["peak"], "hand-written parse", hand["peak"]),
            ("  growth over floor", grown[0], "hand-written growth", grown[1]),
            ("plan (assess)", plan["peak"], "same process before", plan["before"]),
            ("plan (assess)", plan["peak"], "hand-written parse", hand["peak"]),
            ("  growth during plan", planned, "hand-written growth", grown[1]),
        ]
        for what, mine, against, base in lines:
            ratio = f"{mine / base:.2f}x" if base > 0 else "-"
            body.append([n, what, f"{mine:.0f}", against, f"{base:.0f}", ratio])
    floor = "; ".join(
        f"{r['tasks']} tasks {r['ours']['floor']:.0f} ours, {r['hand']['floor']:.0f} hand-written"
        for r in rows
    )
    return (
        "peak resident memory (VmHWM) in MiB, one fresh process each\n"
        f"floor (resident after Airflow's pre-import of the file's modules): {floor}\n"
        + table(header, body)
    )


def why_report(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        for label in ("ours", "hand", "plan"):
            lines = r[label]["top"]
            parts.append(
                f"{r['tasks']} tasks, {label}: biggest allocating lines\n" + "\n".join(lines)
            )
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--why", action="store_true", help="tracemalloc's biggest lines")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args(argv)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    try:
        rows = [measure(SCRATCH / str(n), n, args.why) for n in args.tasks]
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    print(report(rows))
    if args.why:
        print("\n" + why_report(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
