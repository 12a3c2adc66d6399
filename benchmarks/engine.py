"""Airflow engine overhead: DAG parse time and scheduler wall time against baselines.

Run it with ``PYTHONPATH=. .venv/bin/python benchmarks/engine.py`` from the repo root. Options:
``--quick`` (parse 1k tasks only; scheduler part with 50 tasks), ``--skip-scheduler``,
``--json PATH`` (write every measurement), ``--repeats N`` (best of N, default 3). Scratch
files go to the temp folder (``alamode-bench-airflow``).

1. Parse: an encoded file of 1k and 10k tasks (a seeded random layered DAG, ~2
   dependencies per task) read through its generated DAG file, against a hand-written
   DAG file of BashOperators with the same tasks, edges and command strings. Each
   measurement is a fresh process that pre-imports the ``airflow.*`` modules the file
   names (as the DAG processor does), freezes its heap as the DAG processor's manager
   does before forking parsers (``gc.freeze``), and times ``DagBag`` on a folder holding
   just that file, then the serialization the DAG processor does next; best of 3, with
   the peak memory of that process. Target: ours / hand-written <= 1.1. Our load is also split
   into importing the loader, ``a_la_mode.load`` and building the operators. ``task s``
   is our file parsed as a task process parses it (in Airflow's parsing context, to run
   the last task): the hand-written file costs a task process what it costs the DAG
   processor.
2. Scheduler: a real ``api-server``, ``scheduler`` and ``dag-processor`` (LocalExecutor,
   SQLite) run a 200-task DAG cold, then fully cached, and a 1-task DAG cold and cached
   as the baseline; times are read from the ``dag_run`` table (queued -> end). Target:
   cached 200 tasks <= 1.5x the 1-task run.

Every Airflow call runs in a child process, so the figures include no import cost of
this process. Parse figures are the child's CPU seconds (wall time on a machine shared
with other work measures that work too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from report import table
from shapes import Graph, random_layered

from a_la_mode import Dag, load
from alamode_airflow.dag_module import write_module
from loopback.airflow_cli import AirflowHome
from loopback.local import (
    free_port,
    query,
    service_env,
    services,
    wait_registered,
)

REPO = Path(__file__).resolve().parents[1]
LOADER = REPO / "dags" / "alamode_dags.py"
SCRATCH = Path(tempfile.gettempdir()) / "alamode-bench-airflow"
PARSE_TARGET = 1.1
SCHED_TARGET = 1.5
PARSE_SIZES = (1000, 10000)
QUICK_PARSE_SIZES = (1000,)
SCHED_TASKS = 200
QUICK_SCHED_TASKS = 50
REPEATS = 3
RUN_TIMEOUT_S = 1800.0


# --- the DAG shape ------------------------------------------------------------------------


def command_of(name: str) -> str:
    # Distinct per task, so no two root tasks share an output ID (which would make the
    # engine compute it once and blur the cold-run numbers).
    return f'echo {name} > "$ALAMODE_OUTPUT/x"'


def save_encoded(graph: Graph, dag_id: str, path: Path) -> Path:
    dag = Dag({"dag_id": dag_id})
    for name, deps in graph.items():
        dag.task(name, {"command": command_of(name)}).add_dep(*deps)
    return dag.save(path)


def write_handwritten(graph: Graph, dag_id: str, path: Path) -> Path:
    """The same DAG as a person would write it: one BashOperator per task, one edge a
    line, the same command strings."""
    lines = [
        "from datetime import datetime",
        "",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "from airflow.sdk import DAG",
        "",
        f"with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1),"
        " catchup=False):",
    ]
    lines += [
        f"    {n} = BashOperator(task_id={n!r}, bash_command={command_of(n)!r})" for n in graph
    ]
    lines += [f"    {dep} >> {name}" for name, deps in graph.items() for dep in deps]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- part 1: parse ------------------------------------------------------------------------

# Runs in a fresh interpreter. The DAG processor's manager freezes its heap (gc.freeze)
# and pre-imports the airflow.* modules a file names before forking the parser, so that
# import is not timed; anything else (our packages) is imported inside the timed DagBag,
# as in the real parser, unless the manager imported it: Airflow imports the package's
# airflow.policy entry point (alamode_airflow.preload, our loader) in every process.
PARSE_CHILD = """
import gc, json, sys, time
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.dag_processing.processor import _pre_import_airflow_modules
import os, structlog, structlog.contextvars
if "_AIRFLOW_PARSING_CONTEXT_TASK_ID" in os.environ:  # as the task runner: bound to the log
    structlog.contextvars.bind_contextvars(
        dag_id=os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"],
        task_id=os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"],
    )
gc.freeze()
folder = Path(sys.argv[1])
for py in folder.glob("*.py"):
    _pre_import_airflow_modules(str(py), structlog.get_logger())
t0 = time.process_time()
bag = DagBag(dag_folder=str(folder), load_op_links=False)
t1 = time.process_time()
for dag in bag.dags.values():
    DagSerialization.to_dict(dag)
t2 = time.process_time()
tasks = sum(len(dag.tasks) for dag in bag.dags.values())
import resource
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"bag": t1 - t0, "serialize": t2 - t1, "dags": len(bag.dags), "rss_mib": rss,
                  "tasks": tasks, "errors": {str(k): v for k, v in bag.import_errors.items()}}))
"""

# Our load split in parts, in a fresh interpreter with Airflow's SDK already imported.
SPLIT_CHILD = """
import gc, json, sys, time
from pathlib import Path
import airflow.sdk
gc.freeze()
t0 = time.process_time()
from a_la_mode import load
from alamode_airflow.factory import build_dag
t1 = time.process_time()
path = Path(sys.argv[1])
pipeline = load(path)
t2 = time.process_time()
build_dag(pipeline, path, None)
t3 = time.process_time()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "build": t3 - t2}))
"""


def child_json(home: AirflowHome, code: str, *args: str | Path) -> dict[str, Any]:
    """What ``code`` prints last as JSON, run in a fresh interpreter with ``args``."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=home.env,
        cwd=SCRATCH,  # sys.path[0] of the child: never the repo or this folder
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_of(home: AirflowHome, code: str, arg: Path, key: str) -> dict[str, Any]:
    runs = [child_json(home, code, arg) for _ in range(REPEATS)]
    if runs[0].get("errors"):
        raise RuntimeError(f"import errors parsing {arg}: {runs[0]['errors']}")
    return min(runs, key=lambda r: r[key])


def parse_homes(root: Path) -> tuple[AirflowHome, AirflowHome]:
    """Two homes: one that caches bytecode (the default: the hand-written file is
    compiled once), one that does not (every parse compiles the file). The cache lives
    in scratch, never next to the repo's modules."""
    cache = (("PYTHONDONTWRITEBYTECODE", ""), ("PYTHONPYCACHEPREFIX", str(root / "pycache")))
    cached = AirflowHome(root / "home", root / "unused", extra_env=cache)
    plain = AirflowHome(root / "home", root / "unused")
    cached.home.mkdir(parents=True, exist_ok=True)
    return cached, plain


def parse_size(root: Path, n: int) -> dict[str, Any]:
    graph = random_layered(n)
    ours, hand = root / f"ours_{n}", root / f"hand_{n}"
    for folder in (ours, hand):
        folder.mkdir(parents=True)
    encoded = save_encoded(graph, f"ours_{n}", ours / f"ours_{n}.alamode")
    write_module(encoded, load(encoded))  # its DAG file, as `alamode encode --dags-folder`
    write_handwritten(graph, f"hand_{n}", hand / f"hand_{n}.py")
    cached, plain = parse_homes(root)
    row: dict[str, Any] = {"tasks": n, "edges": sum(map(len, graph.values()))}
    row["ours"] = best_of(cached, PARSE_CHILD, ours, "bag")
    row["hand"] = best_of(cached, PARSE_CHILD, hand, "bag")
    row["hand_nopyc"] = best_of(plain, PARSE_CHILD, hand, "bag")
    row["split"] = best_of(cached, SPLIT_CHILD, encoded, "load")
    # As a task process parses the file, for the task with the most ancestors (the
    # hand-written file builds every task there too: Airflow's parse is the same).
    running = replace(cached, extra_env=(*cached.extra_env, *running_task(f"ours_{n}", graph)))
    row["task"] = best_of(running, PARSE_CHILD, ours, "bag")
    row["ratio"] = row["ours"]["bag"] / row["hand"]["bag"]
    row["ratio_with_serialize"] = _total(row["ours"]) / _total(row["hand"])
    row["pass"] = row["ratio"] <= PARSE_TARGET
    return row


def running_task(dag_id: str, graph: Graph) -> tuple[tuple[str, str], ...]:
    """The parsing context Airflow's task runner parses a DAG file in, for the last
    task of ``graph`` (a layered DAG's: the most tasks upstream)."""
    return (
        ("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id),
        ("_AIRFLOW_PARSING_CONTEXT_TASK_ID", list(graph)[-1]),
    )


def _total(m: dict[str, float]) -> float:
    return m["bag"] + m["serialize"]


def parse_bench(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    root = SCRATCH / "parse"
    shutil.rmtree(root, ignore_errors=True)
    rows = []
    for n in sizes:
        print(f"parse: {n} tasks ...", file=sys.stderr, flush=True)
        rows.append(parse_size(root, n))
    return rows


# --- part 2: a real scheduler -------------------------------------------------------------


def run_dag(home: AirflowHome, dag_id: str, run_id: str) -> dict[str, Any]:
    """Trigger one run and wait for it; its timings as Airflow recorded them."""
    start = time.monotonic()
    home.cli("dags", "trigger", dag_id, "--run-id", run_id)
    sql = "select state from dag_run where dag_id=? and run_id=?"
    while (rows := query(home, sql, dag_id, run_id)) == [] or rows[0][0] not in (
        "success",
        "failed",
    ):
        if time.monotonic() - start > RUN_TIMEOUT_S:
            raise RuntimeError(f"{dag_id} {run_id} not finished after {RUN_TIMEOUT_S:.0f} s")
        time.sleep(0.2)
    result = run_facts(home, dag_id, run_id)
    result.update(state=rows[0][0], wall_s=time.monotonic() - start)
    return result


def run_facts(home: AirflowHome, dag_id: str, run_id: str) -> dict[str, Any]:
    """Where the time went (seconds from the trigger) and whether skipped tasks ever
    reached a worker (a worker sets pid and hostname, and try_number > 0)."""
    sec = "(julianday({}) - julianday(r.queued_at)) * 86400"
    run = query(
        home,
        f"select {sec.format('r.start_date')}, {sec.format('r.end_date')} from dag_run r "
        "where dag_id=? and run_id=?",
        dag_id,
        run_id,
    )[0]
    plan = query(
        home,
        f"select {sec.format('t.queued_dttm')}, {sec.format('t.start_date')}, "
        f"{sec.format('t.end_date')} from task_instance t join dag_run r using (dag_id, run_id) "
        "where dag_id=? and run_id=? and task_id='alamode_plan'",
        dag_id,
        run_id,
    )
    tis = query(
        home,
        "select state, count(*), sum(pid is not null), sum(hostname is not null and "
        "hostname != ''), max(try_number), sum(duration) from task_instance "
        "where dag_id=? and run_id=? and task_id != 'alamode_plan' group by state",
        dag_id,
        run_id,
    )
    return {
        "started_s": run[0],
        "duration_s": run[1],
        "plan_queued_s": plan[0][0] if plan else None,
        "plan_started_s": plan[0][1] if plan else None,
        "plan_ended_s": plan[0][2] if plan else None,
        "tasks": {
            s: {"n": n, "pid": p, "host": h, "max_try": t, "busy_s": d} for s, n, p, h, t, d in tis
        },
    }


def scheduler_home(n: int) -> tuple[AirflowHome, int, list[str]]:
    root = SCRATCH / "scheduler"
    shutil.rmtree(root, ignore_errors=True)
    port = free_port()
    home = AirflowHome(root / "home", root / "dags", extra_env=service_env(port))
    home.dags.mkdir(parents=True)
    home.migrate()
    shutil.copy(LOADER, home.dags / LOADER.name)
    big, one = f"bench_{n}", "bench_1"
    save_encoded(random_layered(n), big, home.dags / f"{big}.alamode")
    save_encoded({"single": []}, one, home.dags / f"{one}.alamode")
    return home, port, [one, big]


def scheduler_bench(n: int) -> dict[str, Any]:
    """Cold then cached runs of the 1-task DAG (which also warms the services up), then
    of the n-task DAG. Cached runs are taken three times (a run waits for the
    scheduler's next loop, so single runs are noisy); the best counts."""
    home, port, (one, big) = scheduler_home(n)
    runs: dict[str, list[dict[str, Any]]] = {}
    plan = [("one_cold", one), *[("one_cached", one)] * 3]
    plan += [("big_cold", big), *[("big_cached", big)] * 3]
    with services(home, port):
        wait_registered(home, [one, big])
        for dag_id in (one, big):
            home.cli("dags", "unpause", dag_id)
        for i, (label, dag_id) in enumerate(plan):
            print(f"scheduler: {label} ...", file=sys.stderr, flush=True)
            runs.setdefault(label, []).append(run_dag(home, dag_id, f"bench_{i}_{label}"))
    best = {label: min(rs, key=lambda r: r["duration_s"]) for label, rs in runs.items()}
    failed = [label for label, rs in runs.items() for r in rs if r["state"] != "success"]
    return {
        "tasks": n,
        "runs": runs,
        "best": best,
        "failed": failed,
        "cached_vs_one": best["big_cached"]["duration_s"] / best["one_cached"]["duration_s"],
        "cached_vs_one_cold": best["big_cached"]["duration_s"] / best["one_cold"]["duration_s"],
        "cached_vs_cold": best["big_cached"]["duration_s"] / best["big_cold"]["duration_s"],
        "pass": not failed
        and best["big_cached"]["duration_s"] <= SCHED_TARGET * best["one_cached"]["duration_s"],
    }


# --- report -------------------------------------------------------------------------------


def _peak(m: dict[str, Any]) -> float:
    """Peak resident memory of the parsing process (DagBag and serialization)."""
    return m["rss_mib"]


def parse_report(rows: list[dict[str, Any]]) -> str:
    header = [
        "tasks",
        "edges",
        "ours s",
        "hand s",
        "ratio",
        "target",
        "",
        "+ser ours",
        "+ser hand",
        "ratio",
        "hand nopyc",
        "import",
        "load",
        "build",
        "task s",
        "task/hand",
        "peak MiB ours",
        "hand",
    ]
    body = []
    for r in rows:
        ours, hand, split = r["ours"], r["hand"], r["split"]
        body.append([
            str(r["tasks"]), str(r["edges"]), f"{ours['bag']:.3f}", f"{hand['bag']:.3f}",
            f"{r['ratio']:.2f}x", f"<={PARSE_TARGET}x", "PASS" if r["pass"] else "FAIL",
            f"{_total(ours):.3f}", f"{_total(hand):.3f}", f"{r['ratio_with_serialize']:.2f}x",
            f"{r['hand_nopyc']['bag']:.3f}", f"{split['import']:.3f}",
            f"{split['load']:.3f}", f"{split['build']:.3f}",
            f"{r['task']['bag']:.3f}", f"{r['task']['bag'] / hand['bag']:.2f}x",
            f"{_peak(ours):.0f}", f"{_peak(hand):.0f}",
        ])  # fmt: skip
    title = f"DAG parse (DagBag, best of {REPEATS}; +ser = with serialization; task ="
    title += " ours as a task process parses it, to run its last task)"
    return title + "\n" + table(header, body)


def scheduler_report(s: dict[str, Any]) -> str:
    header = [
        "run",
        "state",
        "queued->end s",
        "->plan start",
        "->plan end",
        "wall s",
        "tasks by state (pid set / host set / max try)",
    ]
    body = []
    for label in ("one_cold", "one_cached", "big_cold", "big_cached"):
        for r in s["runs"][label]:
            states = ", ".join(
                f"{st}:{v['n']} ({v['pid']}/{v['host']}/{v['max_try']})"
                for st, v in sorted(r["tasks"].items(), key=lambda kv: str(kv[0]))
            )
            body.append([
                label.replace("big", str(s["tasks"])), r["state"], f"{r['duration_s']:.2f}",
                _fmt(r["plan_started_s"]), _fmt(r["plan_ended_s"]), f"{r['wall_s']:.2f}", states,
            ])  # fmt: skip
    verdict = "PASS" if s["pass"] else "FAIL"
    return (
        "Scheduler (LocalExecutor, SQLite; times from dag_run.queued_at)\n"
        + table(header, body)
        + f"\ncached {s['tasks']} / cached 1-task: {s['cached_vs_one']:.2f}x "
        f"(target <= {SCHED_TARGET}x) {verdict};  cached {s['tasks']} / cold 1-task: "
        f"{s['cached_vs_one_cold']:.2f}x;  cached / cold {s['tasks']}: "
        f"{s['cached_vs_cold']:.2f}x"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k parse, 50-task scheduler run")
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="best of N (default 3)")
    args = parser.parse_args(argv)
    REPEATS = args.repeats
    SCRATCH.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result: dict[str, Any] = {
        "parse": parse_bench(QUICK_PARSE_SIZES if args.quick else PARSE_SIZES)
    }
    print(parse_report(result["parse"]))
    ok = all(r["pass"] for r in result["parse"])
    if not args.skip_scheduler:
        result["scheduler"] = scheduler_bench(QUICK_SCHED_TASKS if args.quick else SCHED_TASKS)
        print("\n" + scheduler_report(result["scheduler"]))
        ok = ok and result["scheduler"]["pass"]
    result["total_s"] = time.monotonic() - started
    print(f"\ntotal {result['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
