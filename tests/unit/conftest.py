from __future__ import annotations

from collections.abc import Iterator

import pytest

from a_la_mode import Dag
from alamode_airflow.store import OutputStore
from loopback.servers import s3_server
from tests.unit.counting import requests_sent


@pytest.fixture
def collage() -> Dag:
    """The seed's collage pipeline, connected with the shift operators."""
    dag = Dag({"schedule": "@daily", "dag_id": "collage"})
    dag.task("download_images", {"image": "collage", "sha": "1qe34", "command": "python dl.py"})
    dag.task("blur", {"image": "collage", "sha": "6f09d", "command": "python t.py blur"})
    dag.task("edge_enhance", {"image": "collage", "sha": "1qe34", "command": "python t.py edge"})
    dag.task("collage", {"image": "collage", "sha": "1qe34", "command": "python collage.py"})
    dag.download_images >> [dag.blur, dag.edge_enhance] >> dag.collage
    return dag


@pytest.fixture(autouse=True)
def no_record_cache(monkeypatch) -> None:
    """Every record read goes to the store (what request counts assume), and no test
    writes into a cache under the home folder; tests of the cache name a folder."""
    monkeypatch.setenv("AIRFLOW__ALAMODE__RECORD_CACHE", "none")


@pytest.fixture(autouse=True)
def no_parse_cache(monkeypatch) -> None:
    """No test keeps what encoded files declare under the home folder; tests of the
    parse cache name a folder of their own."""
    monkeypatch.setenv("AIRFLOW__ALAMODE__PARSE_CACHE", "none")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An S3 server on loopback for the module. Each module reaches it through a
    connection ID of its own: S3 clients are cached by connection ID, and a client of
    an earlier module's server (stopped since) must not be reused."""
    with s3_server(tmp_path_factory.mktemp("s3")) as running:
        yield running


@pytest.fixture
def s3_store(server, monkeypatch, request) -> OutputStore:
    """A store of the test's own on the module's S3 server, through a connection ID of
    the module's own (Airflow's ``[alamode] storage_conn_id`` names it too)."""
    conn_id = f"alamode_{request.module.__name__.rsplit('.', 1)[-1]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", server.connection())
    monkeypatch.setenv("AIRFLOW__ALAMODE__STORAGE_CONN_ID", conn_id)
    return OutputStore(f"s3://alamode-outputs/{request.node.name}", conn_id=conn_id)


@pytest.fixture
def s3_sent(s3_store) -> Iterator[list[tuple[str, str]]]:
    """(method, URL) of every request ``s3_store``'s client sends while the test runs."""
    with requests_sent(s3_store.root.fs) as requests:
        yield requests
