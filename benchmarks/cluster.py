"""Celery (2 workers, PostgreSQL, Redis, outputs in S3) against the LocalExecutor
(SQLite, local store) on the same 50-task pipeline, driven through the REST API.

Run it with ``make bench-cluster`` (or ``PYTHONPATH=. .venv/bin/python benchmarks/cluster.py``).
For each executor: the 50-task DAG cold (every task computes), then fully cached (every
task skipped), and a 1-task DAG cold and cached as the baseline. A run's time is the
server's (queued -> end); cached figures are the median of 5 runs. Scheduler overhead
per skipped task = (cached 50 - cached 1) / 49.
Scratch files go to the temp folder (``alamode-bench-cluster``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from loopback.airflow_cli import AirflowHome
from loopback.celery import cluster
from loopback.local import free_port, service_env, services
from loopback.pipelines import generated
from loopback.rest import Api

REPO = Path(__file__).resolve().parents[1]
SCRATCH = Path(tempfile.gettempdir()) / "alamode-bench-cluster"
TASKS = 50
CACHED_REPEATS = 5


def prepare(root: Path) -> Path:
    dags = root / "dags"
    dags.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "alamode_dags.py", dags)
    generated("wide", TASKS).save(dags / "wide.alamode")
    generated("one", 1).save(dags / "one.alamode")
    return dags


def timed_run(api: Api, dag_id: str, day: int) -> float:
    run_id = api.trigger(dag_id, f"2026-05-{day:02d}T00:00:00Z")
    state = api.wait_run(dag_id, run_id, timeout=1800)
    if state != "success":
        raise SystemExit(f"{dag_id} run {run_id} ended {state}")
    run = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
    queued, end = (datetime.fromisoformat(run[key]) for key in ("queued_at", "end_date"))
    return (end - queued).total_seconds()


def measure(api: Api) -> dict[str, float]:
    api.wait_dags(["wide", "one"])
    for dag_id in ("wide", "one"):
        api.unpause(dag_id)
    cached_days = range(2, 2 + CACHED_REPEATS)
    figures = {
        "cold_50": timed_run(api, "wide", 1),
        "cached_50": statistics.median(timed_run(api, "wide", day) for day in cached_days),
        "cold_1": timed_run(api, "one", 1),
        "cached_1": statistics.median(timed_run(api, "one", day) for day in cached_days),
    }
    figures["per_skipped_task"] = (figures["cached_50"] - figures["cached_1"]) / (TASKS - 1)
    return figures


def celery_figures(root: Path) -> dict[str, float]:
    dags = prepare(root / "celery")
    with cluster(root / "celery" / "home", dags) as running:
        return measure(Api(running.url))


def local_figures(root: Path) -> dict[str, float]:
    dags = prepare(root / "local")
    port = free_port()
    home = AirflowHome(root / "local" / "home", dags, service_env(port))
    home.migrate()
    with services(home, port):
        return measure(Api(f"http://127.0.0.1:{port}"))


def report(results: dict[str, dict[str, float]]) -> str:
    rows = [
        ("50 tasks, cold", "cold_50"),
        ("50 tasks, fully cached", "cached_50"),
        ("1 task, cold", "cold_1"),
        ("1 task, cached", "cached_1"),
        ("overhead per skipped task", "per_skipped_task"),
    ]
    lines = [f"{'seconds':<28}{'Celery (2 workers)':>20}{'LocalExecutor':>16}{'ratio':>8}"]
    for label, key in rows:
        celery, local = results["celery"][key], results["local"][key]
        ratio = f"{celery / local:.2f}" if local > 0 else "-"
        lines.append(f"{label:<28}{celery:>20.2f}{local:>16.2f}{ratio:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    results: dict[str, Any] = {
        "celery": celery_figures(SCRATCH),
        "local": local_figures(SCRATCH),
    }
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(SCRATCH, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
