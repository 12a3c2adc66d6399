"""The provenance page of a large DAG: is it as fast as ``alamode status`` on it?

Run it from the repo root with ``PYTHONPATH=. .venv/bin/python benchmarks/view.py``
(``--tasks N``, default 1000; ``--changed N``, default 50: tasks whose spec changed since
their output was recorded, so the page names their nearest earlier output and what
differs; ``--runs N``, default 5, the median is printed; ``--root PATH``, default the
temp folder: where the Airflow home and the store are made).

The pipeline is ``N / 100`` chains of 100 tasks (each reads the one before it). Every
task's output of an earlier version is recorded in a local store, written directly in
the store's layout with the task marker a commit writes; the encoded file then changes
the spec of the last ``--changed / chains`` tasks of each chain, whose outputs are
therefore missing and explained. The file is parsed into a real Airflow home
(``airflow dags reserialize``) and a real ``airflow api-server`` serves the page:

- page, first: ``GET /alamode/dags/<dag>`` once, on a server that has served nothing yet
  (the app, the DAG bag and the file are loaded on the way);
- page, warm: the same request again (median of ``--runs``);
- floor: ``history.status`` in this process on the same file and store (what the page
  must do anyway: one batched walk of the store);
- alamode status: the command on the same file and store, a process each time, as a
  user types it (median of ``--runs``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from plan import record_of
from report import best_time, table, timed

from a_la_mode import Dag, load
from alamode_airflow.history import status
from alamode_airflow.store import OutputStore
from alamode_airflow.task_index import marker
from loopback.airflow_cli import AirflowHome
from loopback.local import api_env, free_port, start, stop, wait_for_port

DAG_ID = "view_bench"
CHAIN = 100


def pipeline(tasks: int, changed_per_chain: int, version: str) -> Dag:
    """Chains of ``CHAIN`` tasks; in ``version`` "new", the last tasks of each chain
    have another spec."""
    dag = Dag({"dag_id": DAG_ID})
    for n in range(tasks):
        late = n % CHAIN >= CHAIN - changed_per_chain
        spec = {"command": f"echo {n}", "version": version if late else "old"}
        dag.task(f"t{n:05d}", spec)
        if n % CHAIN:
            dag[f"t{n - 1:05d}"] >> dag[f"t{n:05d}"]
    return dag


def fill(root: Path, old) -> None:
    """Every output of ``old`` (a loaded pipeline) as a local commit leaves it."""
    for task in old:
        record = record_of(task, old, (), dag_id=DAG_ID)
        folder = root / "objects" / task.output / "0"
        (folder / "data").mkdir(parents=True)
        (folder / "record.json").write_text(record.dumps())
        (root / marker(record)).parent.mkdir(parents=True, exist_ok=True)
        (root / marker(record)).touch()


def serve(home: AirflowHome, port: int, url: str, runs: int) -> tuple[float, float, str]:
    """The page's first and median warm time, and its text."""
    server = start(home, "api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"])
    try:
        wait_for_port(port, [server])
        token = requests.get(f"{url}/auth/token", timeout=60).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        page = f"{url}/alamode/dags/{DAG_ID}"
        answers = []

        def get() -> None:
            answers.append(requests.get(page, headers=headers, timeout=600))

        first = timed(get)
        warm = statistics.median(timed(get) for _ in range(runs))
        if any(answer.status_code != 200 for answer in answers):
            raise RuntimeError(f"the page failed: {answers[-1].status_code} {answers[-1].text}")
        return first, warm, answers[-1].text
    finally:
        stop([server])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", default=None)
    args = parser.parse_args()
    per_chain = args.changed * CHAIN // args.tasks
    with tempfile.TemporaryDirectory(prefix="alamode-bench-view-", dir=args.root) as tmp:
        port = free_port()
        home = AirflowHome(Path(tmp) / "home", Path(tmp) / "dags", extra_env=api_env(port))
        home.migrate()
        home.dags.mkdir()
        fill(home.store, load(pipeline(args.tasks, per_chain, "old").bencode()))
        encoded = pipeline(args.tasks, per_chain, "new").save(home.dags / f"{DAG_ID}.alamode")
        (home.dags / "alamode_dags.py").write_text(
            "from pathlib import Path\n\nfrom alamode_airflow.loader import load_dags\n\n"
            "globals().update(load_dags(Path(__file__).parent))\n"
        )
        home.cli("dags", "reserialize")
        first, warm, text = serve(home, port, f"http://127.0.0.1:{port}", args.runs)
        store, loaded = OutputStore(str(home.store)), load(encoded)
        floor = best_time(lambda: status(loaded, store), args.runs)
        command = [str(Path(sys.executable).parent / "alamode"), "status", str(encoded)]
        command += ["--store", str(home.store)]
        cli = statistics.median(
            timed(lambda: subprocess.run(command, capture_output=True, check=True, env=home.env))
            for _ in range(args.runs)
        )
    done = args.tasks - text.count("runs: changed")
    rows = [
        ["page, first", f"{first:.2f}"],
        ["page, warm", f"{warm:.2f}"],
        ["floor: history.status", f"{floor:.2f}"],
        ["alamode status", f"{cli:.2f}"],
    ]
    print(f"{args.tasks} tasks, {done} recorded and current, {args.tasks - done} changed")
    print(table(["", "seconds"], rows))
    print(f"warm page within 2 s: {'ok' if warm <= 2.0 else 'FAIL'}")
    return 0 if warm <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
