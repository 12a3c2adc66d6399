"""Airflow's api-server alone on an AirflowHome: what a person's browser or script
talks to, for tests that need the REST API or the UI but no scheduler (their runs come
from ``airflow dags test``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loopback.airflow_cli import AirflowHome
from loopback.local import start, stop, wait_for_port


@contextmanager
def api_server(home: AirflowHome, port: int) -> Iterator[str]:
    """``airflow api-server`` on 127.0.0.1:``port`` until the context ends; yields its
    URL. Its log goes to ``<home>/api-server.log``."""
    proc = start(home, "api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"])
    try:
        wait_for_port(port, [proc])
        yield f"http://127.0.0.1:{port}"
    finally:
        stop([proc])
