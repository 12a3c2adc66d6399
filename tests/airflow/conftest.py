"""A real Airflow for each test: its own AIRFLOW_HOME with a migrated SQLite database,
its own dags folder and storage root, driven through the ``airflow`` CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from a_la_mode import Dag
from loopback.airflow_cli import AirflowHome
from loopback.local import free_port, service_env

REPO = Path(__file__).parents[2]
LOADER = REPO / "dags" / "alamode_dags.py"


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """One ``airflow db migrate`` per session; each test gets a copy of the database."""
    home = tmp_path_factory.mktemp("airflow-template")
    AirflowHome(home, home / "dags").migrate()
    return home / "airflow.db"


class Airflow(AirflowHome):
    """The test's Airflow, remembering the log of its last run."""

    def save(self, dag: Dag, name: str) -> Path:
        return dag.save(self.dags / f"{name}.alamode")

    def run(
        self, dag_id: str, date: str, *, ok: bool = True, conf: dict | None = None
    ) -> dict[str, str]:
        result = self.test_run(dag_id, date, check=ok, conf=conf)
        object.__setattr__(self, "last_log", result.log)
        return result.states

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


def started(tmp_path, migrated_db) -> tuple[AirflowHome, int]:
    """A fresh Airflow home for services (api-server, scheduler, ...) on a free port."""
    port = free_port()
    home = AirflowHome(tmp_path / "home", tmp_path / "dags", extra_env=service_env(port))
    home.home.mkdir()
    home.dags.mkdir()
    shutil.copy(migrated_db, home.home / "airflow.db")
    shutil.copy(LOADER, home.dags / LOADER.name)
    return home, port


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


def pytest_collection_modifyitems(items):
    # Every test here runs a real Airflow; `make test-fast` leaves them out.
    for item in items:
        if "tests/airflow/" in str(item.fspath):
            item.add_marker(pytest.mark.airflow)
