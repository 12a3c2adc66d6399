"""Driving a real ``airflow`` command against one Airflow home: the demo, the
benchmarks and the tests all run Airflow this way."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RUN_ID = re.compile(r"DagRun Finished: dag_id=\S+, logical_date=[^,]+, run_id=([^,]+),")
AIRFLOW = str(Path(sys.executable).parent / "airflow")
#: The checkout: Airflow's processes import ``loopback`` (its SQLite connect args)
#: from here, since this package is not installed with the product.
CHECKOUT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    states: dict[str, str]
    log: str = field(repr=False)


@dataclass(frozen=True)
class AirflowHome:
    """An AIRFLOW_HOME with a SQLite database, a dags folder and an alamode store."""

    home: Path
    dags: Path
    extra_env: tuple[tuple[str, str], ...] = ()

    @property
    def store(self) -> Path:
        return self.home / "store"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__ALAMODE__STORAGE_ROOT=str(self.store),
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            PYTHONPATH=os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])),
            # Airflow imports the dags folder's modules; keep bytecode out of it.
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")

    def json(self, *args: str) -> Any:
        """An ``airflow ... -o json`` command's result (warnings may precede it)."""
        for line in reversed(self.cli(*args, "-o", "json").stdout.splitlines()):
            if line.startswith(("[{", "[]", "{")):
                return json.loads(line)
        raise RuntimeError(f"no JSON from airflow {' '.join(args)}")

    def test_run(
        self, dag_id: str, date: str, *, check: bool = True, conf: dict | None = None
    ) -> RunResult:
        """One ``airflow dags test`` run; the final state of each of its tasks."""
        extra = ("-c", json.dumps(conf)) if conf else ()
        done = self.cli("dags", "test", dag_id, date, *extra, check=check)
        log = done.stdout + done.stderr
        match = _RUN_ID.search(log)
        if not match:
            raise RuntimeError(f"no finished run in the output of dags test:\n{log[-3000:]}")
        return RunResult(match.group(1), self.states(dag_id, match.group(1)), log)

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        sql = "select task_id, state from task_instance where dag_id=? and run_id=?"
        return dict(self.query(sql, dag_id, run_id))

    def query(self, sql: str, *params: Any) -> list[tuple]:
        """Read the Airflow database (SQLite) directly."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, params).fetchall()
