"""A real Airflow deployment on loopback: api-server, scheduler and dag-processor with
the LocalExecutor, on one AirflowHome. The benchmarks and the slow tests use it to
exercise what only a scheduler does (backfills, triggered runs)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from loopback.airflow_cli import AIRFLOW, AirflowHome
from loopback.wait import until

#: SQLite connection settings for every process of the deployment (imported by Airflow
#: through [database] sql_alchemy_connect_args): wait up to a minute for the write lock
#: instead of failing after five seconds when the scheduler holds it.
SQLITE_CONNECT_ARGS = {"timeout": 60}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_env(port: int) -> tuple[tuple[str, str], ...]:
    """What every deployment here shares: an api-server on ``port`` that the task
    processes reach, one JWT secret for every service (the api-server accepts only the
    tokens it can verify), every user an admin, new DAGs paused, files found in 5 s."""
    return (
        ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://127.0.0.1:{port}/execution/"),
        ("AIRFLOW__API__HOST", "127.0.0.1"),
        ("AIRFLOW__API__PORT", str(port)),
        ("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{port}"),
        ("AIRFLOW__API__WORKERS", "1"),
        ("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(24)),
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True"),
        ("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True"),
        ("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "5"),
    )


def service_env(port: int) -> tuple[tuple[str, str], ...]:
    """Settings for an AirflowHome whose services listen on ``port``: the LocalExecutor
    on the home's SQLite database."""
    return (
        *api_env(port),
        ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "loopback.local.SQLITE_CONNECT_ARGS"),
        # Files already seen are re-parsed every 30 s.
        ("AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL", "30"),
    )


@contextmanager
def services(home: AirflowHome, port: int) -> Iterator[None]:
    """api-server, scheduler and dag-processor, each in its own process group, stopped
    (terminate, then kill) whatever happens. Their logs go to the home."""
    procs: list[subprocess.Popen] = []
    try:
        for name, args in (
            ("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
        ):
            procs.append(start(home, name, args))
        wait_for_port(port, procs)
        yield
    finally:
        stop(procs)


def start(
    home: AirflowHome, name: str, args: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``airflow *args`` in its own process group, logging to ``<home>/<name>.log``."""
    with open(home.home / f"{name}.log", "a") as log:
        return subprocess.Popen(
            [AIRFLOW, *args],
            env={**home.env, **(env or {})},
            cwd=home.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_port(port: int, procs: list[subprocess.Popen], timeout: float = 120.0) -> None:
    def listening() -> bool:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("an Airflow service exited early; see its log in the home")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    until(listening, timeout=timeout, every=0.5, what=f"api-server not listening on {port}")


def stop(procs: list[subprocess.Popen]) -> None:
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        alive = [p for p in procs if p.poll() is None]
        for p in alive:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, sig)  # the group: LocalExecutor workers and task processes
        deadline = time.monotonic() + grace
        for p in alive:
            with suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))


def query(home: AirflowHome, sql: str, *params: Any) -> list[tuple]:
    """A read that retries while a service holds SQLite's write lock."""
    for _ in range(50):
        try:
            return home.query(sql, *params)
        except sqlite3.OperationalError:
            time.sleep(0.2)
    return home.query(sql, *params)


def wait_registered(home: AirflowHome, dag_ids: list[str], timeout: float = 180.0) -> None:
    """Wait until the dag-processor has stored every DAG in ``dag_ids``."""
    marks = ",".join("?" * len(dag_ids))
    sql = f"select count(*) from serialized_dag where dag_id in ({marks})"
    until(
        lambda: query(home, sql, *dag_ids)[0][0] == len(dag_ids),
        timeout=timeout,
        every=1,
        what=f"DAGs {dag_ids} not parsed",
    )


def wait_backfill(home: AirflowHome, backfill_id: int, timeout: float = 600.0) -> list[tuple]:
    """Wait until the scheduler completes backfill ``backfill_id`` (its runs all
    finished); returns its runs as (run_id, logical_date, state), by logical date."""
    done = "select 1 from backfill where id=? and completed_at is not null"
    until(
        lambda: query(home, done, backfill_id),
        timeout=timeout,
        every=0.5,
        what=f"backfill {backfill_id} not complete",
    )
    return query(
        home,
        "select r.run_id, r.logical_date, r.state from dag_run r join backfill_dag_run b "
        "on b.dag_run_id = r.id where b.backfill_id=? order by r.logical_date",
        backfill_id,
    )
