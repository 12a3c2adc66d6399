"""Cold run on a real scheduler: our DAG against a hand-written BashOperator DAG.

Run it with ``PYTHONPATH=. .venv/bin/python benchmarks/cold_run.py`` from the repo root. Options:
``--tasks N`` (default 200), ``--repeats N`` (cold runs of each DAG, default 1; the
best counts), ``--json PATH``. Scratch files go to the temp folder
(``alamode-bench-airflow/cold``).

One deployment (a real ``api-server``, ``scheduler`` and ``dag-processor``, the
LocalExecutor, SQLite) holds both DAGs of the same shape (a seeded random layered DAG,
~2 dependencies per task, as ``engine.py`` builds): ours, an encoded file with its
generated module (as ``alamode encode --dags-folder`` writes it), and a hand-written
file of BashOperators with the same tasks, edges and command strings, each writing
into a folder of its own. After a 1-task run of each (the services warm up), each
repeat runs the hand-written DAG, then ours on an empty store, one at a time. Times are
read from the ``dag_run`` table (queued -> end); the mean task duration is Airflow's
(``task_instance.duration``: start to end of the attempt). Target: ours / hand-written
<= 1.1.

Each run also reports the CPU time the deployment spent on it, per service (the
scheduler's figure holds its LocalExecutor workers, the task processes they start and
the commands' processes): on a machine shared with other work, wall times swing with
the load, and CPU seconds say what a run costs more steadily.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from engine import SCRATCH, command_of, run_dag, save_encoded
from report import table
from shapes import Graph, random_layered

from a_la_mode import load
from alamode_airflow.dag_module import write_module
from loopback.airflow_cli import AirflowHome
from loopback.local import (
    free_port,
    query,
    service_env,
    services,
    wait_registered,
)

TARGET = 1.1
TASKS = 200


def write_bash_dag(graph: Graph, dag_id: str, path: Path, outputs: Path) -> Path:
    """The DAG as a person would write it: one BashOperator per task, the same command
    strings, each given a fresh folder as ``$ALAMODE_OUTPUT`` (the engine gives ours a
    staging folder), one edge a line."""
    lines = [
        "from datetime import datetime",
        "",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "from airflow.sdk import DAG",
        "",
        f"OUT = {str(outputs)!r}",
        "",
        f"with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1),"
        " catchup=False):",
    ]
    made = 'mkdir -p "$ALAMODE_OUTPUT" && '
    lines += [
        f"    {n} = BashOperator(task_id={n!r}, bash_command={made + command_of(n)!r},"
        f" env={{'ALAMODE_OUTPUT': OUT + '/{n}'}}, append_env=True)"
        for n in graph
    ]
    lines += [f"    {dep} >> {name}" for name, deps in graph.items() for dep in deps]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ours(graph: Graph, dag_id: str, dags: Path) -> None:
    encoded = save_encoded(graph, dag_id, dags / f"{dag_id}.alamode")
    write_module(encoded, load(encoded))


def cold_home(n: int) -> tuple[AirflowHome, int, dict[str, str]]:
    root = SCRATCH / "cold"
    shutil.rmtree(root, ignore_errors=True)
    port = free_port()
    # Bytecode cached (in scratch, never beside the modules), as an installed package
    # and a deployed dags folder have it: else every task process compiles our modules.
    cache = (("PYTHONDONTWRITEBYTECODE", ""), ("PYTHONPYCACHEPREFIX", str(root / "pycache")))
    home = AirflowHome(root / "home", root / "dags", extra_env=(*service_env(port), *cache))
    home.dags.mkdir(parents=True)
    home.migrate()
    graph = random_layered(n)
    dag_ids = {"ours": f"ours_{n}", "hand": f"hand_{n}", "ours_1": "ours_1", "hand_1": "hand_1"}
    write_ours(graph, dag_ids["ours"], home.dags)
    write_ours({"single": []}, dag_ids["ours_1"], home.dags)
    outputs = root / "bash-outputs"
    write_bash_dag(graph, dag_ids["hand"], home.dags / f"{dag_ids['hand']}.py", outputs)
    write_bash_dag({"single": []}, dag_ids["hand_1"], home.dags / "hand_1.py", outputs)
    return home, port, dag_ids


def task_facts(home: AirflowHome, dag_id: str, run_id: str) -> dict[str, Any]:
    """Mean attempt duration and mean queued -> start wait of the run's executed tasks
    (the plan task left out), in seconds."""
    row = query(
        home,
        "select count(*), avg(duration), avg((julianday(start_date) - julianday(queued_dttm))"
        " * 86400) from task_instance where dag_id=? and run_id=? and state='success'"
        " and task_id != 'alamode_plan'",
        dag_id,
        run_id,
    )[0]
    return {"executed": row[0], "mean_duration_s": row[1], "mean_wait_s": row[2]}


SERVICES = ("api-server", "scheduler", "dag-processor")
TICKS = os.sysconf("SC_CLK_TCK")


def service_groups(home: AirflowHome) -> dict[str, int]:
    """Process group of each service of ``home`` (each leads its own, started in the
    home's folder), by name."""
    groups = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/cwd").resolve() != home.home.resolve():
                continue
            words = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if os.getpgid(int(pid)) != int(pid):
                continue
        except OSError:
            continue
        for name in SERVICES:  # the api-server renames itself "airflow api_server ..."
            if name in words or name.replace("-", "_") in words:
                groups[name] = int(pid)
    return groups


def cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system, with reaped children) of every process in each group."""
    spent = dict.fromkeys(groups, 0.0)
    where = {group: name for name, group in groups.items()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: its time is in its parent's children figures
        if int(fields[2]) in where:
            spent[where[int(fields[2])]] += sum(map(int, fields[11:15])) / TICKS
    return spent


def cold_bench(n: int, repeats: int) -> dict[str, Any]:
    home, port, ids = cold_home(n)
    order = [("ours_1", ids["ours_1"]), ("hand_1", ids["hand_1"])]
    order += [(label, ids[label]) for _ in range(repeats) for label in ("hand", "ours")]
    runs: dict[str, list[dict[str, Any]]] = {}
    with services(home, port):
        wait_registered(home, list(ids.values()))
        for dag_id in ids.values():
            home.cli("dags", "unpause", dag_id)
        groups = service_groups(home)
        for i, (label, dag_id) in enumerate(order):
            if label == "ours":  # every repeat of ours is cold: an empty store
                shutil.rmtree(home.store, ignore_errors=True)
            print(f"cold run: {label} ...", file=sys.stderr, flush=True)
            before = cpu_seconds(groups)
            run = run_dag(home, dag_id, f"cold_{i}_{label}")
            time.sleep(1.0)  # the last task's process ends and is reaped
            after = cpu_seconds(groups)
            run["cpu_s"] = {name: after[name] - before[name] for name in groups}
            run.update(task_facts(home, dag_id, f"cold_{i}_{label}"))
            runs.setdefault(label, []).append(run)
    best = {label: min(rs, key=lambda r: r["duration_s"]) for label, rs in runs.items()}
    failed = [label for label, rs in runs.items() for r in rs if r["state"] != "success"]
    ratio = best["ours"]["duration_s"] / best["hand"]["duration_s"]
    cpu = {label: min(sum(r["cpu_s"].values()) for r in rs) for label, rs in runs.items()}
    return {
        "cpu_ratio": cpu["ours"] / cpu["hand"],
        "cpu_per_task_ms": (cpu["ours"] - cpu["hand"]) / n * 1000,
        "tasks": n,
        "runs": runs,
        "failed": failed,
        "ratio": ratio,
        "per_task_ms": (best["ours"]["duration_s"] - best["hand"]["duration_s"]) / n * 1000,
        "pass": not failed and ratio <= TARGET,
    }


def report(result: dict[str, Any]) -> str:
    header = ["run", "state", "queued->end s", "wall s", "executed", "mean task s", "mean wait s"]
    header += [f"{name} cpu s" for name in SERVICES]
    body = [
        [
            label, r["state"], f"{r['duration_s']:.2f}", f"{r['wall_s']:.2f}",
            str(r["executed"]), _fmt(r["mean_duration_s"]), _fmt(r["mean_wait_s"]),
            *(_fmt(r["cpu_s"].get(name)) for name in SERVICES),
        ]
        for label in ("ours_1", "hand_1", "hand", "ours")
        for r in result["runs"][label]
    ]  # fmt: skip
    verdict = "PASS" if result["pass"] else "FAIL"
    return (
        f"Cold run, {result['tasks']} tasks (LocalExecutor, SQLite; times from "
        "dag_run.queued_at; best of each counts)\n"
        + table(header, body)
        + f"\nours / hand-written: {result['ratio']:.2f}x (target <= {TARGET}x) {verdict}; "
        f"{result['per_task_ms']:+.0f} ms per task; CPU {result['cpu_ratio']:.2f}x, "
        f"{result['cpu_per_task_ms']:+.0f} ms CPU per task"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args(argv)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = cold_bench(args.tasks, args.repeats)
    print(report(result))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
