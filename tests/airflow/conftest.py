"""A real Airflow for each test: its own AIRFLOW_HOME with a migrated SQLite database,
its own dags folder and storage root, driven through the ``airflow`` CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from a_la_mode import Dag

REPO = Path(__file__).parents[2]
LOADER = REPO / "dags" / "alamode_dags.py"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
RUN_ID = re.compile(r"DagRun Finished: dag_id=\S+, logical_date=[^,]+, run_id=([^,]+),")


def airflow_env(home: Path, dags: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__ALAMODE__STORAGE_ROOT=str(home / "store"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    )
    return env


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """One ``airflow db migrate`` per session; each test gets a copy of the database."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = airflow_env(home, home / "dags")
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    return home / "airflow.db"


@dataclass
class Airflow:
    home: Path
    dags: Path

    @property
    def env(self) -> dict[str, str]:
        return airflow_env(self.home, self.dags)

    @property
    def store(self) -> Path:
        return self.home / "store"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def save(self, dag: Dag, name: str) -> Path:
        return dag.save(self.dags / f"{name}.alamode")

    def run(self, dag_id: str, date: str, *, ok: bool = True) -> dict[str, str]:
        """``airflow dags test`` one run; returns task id -> final state."""
        done = self.cli("dags", "test", dag_id, date, check=ok)
        output = done.stdout + done.stderr
        match = RUN_ID.search(output)
        assert match, output[-3000:]
        self.last_log = output
        return self.states(dag_id, match.group(1))

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        rows = self.query(
            "select task_id, state from task_instance where dag_id=? and run_id=?",
            dag_id,
            run_id,
        )
        return dict(rows)

    def query(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, params).fetchall()

    def json(self, *args: str) -> list | dict:
        """An ``airflow ... -o json`` command's result (warnings may precede it)."""
        for line in reversed(self.cli(*args, "-o", "json").stdout.splitlines()):
            if line.startswith(("[{", "[]", "{")):
                return json.loads(line)
        raise AssertionError(f"no JSON from airflow {' '.join(args)}")

    def dag_list(self) -> list[dict]:
        """Parse the dags folder into the database, as the DAG processor does, and list."""
        self.cli("dags", "reserialize")
        return self.json("dags", "list")


@pytest.fixture
def airflow(tmp_path, migrated_db) -> Airflow:
    home = tmp_path / "airflow"
    dags = tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    shutil.copy(migrated_db, home / "airflow.db")
    shutil.copy(LOADER, dags / LOADER.name)
    return Airflow(home, dags)


@pytest.fixture
def counter(tmp_path) -> Path:
    """A file each test command appends its task name to: proof of what executed."""
    return tmp_path / "executed.txt"


def executed(counter: Path) -> list[str]:
    return counter.read_text().split() if counter.exists() else []


def writer(counter: Path, text: str, reads: str | None = None) -> dict:
    """A spec whose command records its execution and writes ``text`` (after the
    content of input ``reads``, if given) to out.txt."""
    source = f'cat "$ALAMODE_INPUT_{reads.upper()}/out.txt"; ' if reads else ""
    command = (
        f'echo "$ALAMODE_TASK" >> {counter}; ({source}echo {text}) > "$ALAMODE_OUTPUT/out.txt"'
    )
    return {"command": command}
