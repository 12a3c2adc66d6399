"""The store commands on an object-store root (moto's S3 server on loopback): a new,
empty prefix is a store with nothing in it; a prefix holding other things is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from a_la_mode import Dag, load
from alamode_airflow.cli import main

CONN_ID = "alamode_cli_s3"
BUCKET_ROOT = "s3://alamode-outputs"


@pytest.fixture
def s3(server, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # error messages on one line
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection())
    monkeypatch.setenv("AIRFLOW__ALAMODE__STORAGE_CONN_ID", CONN_ID)
    return server


def test_status_on_an_object_store(s3, tmp_path, capsys):
    dag = Dag({"dag_id": "one"})
    dag.task("a", {"command": "true"})
    path = dag.save(tmp_path / "one.alamode")
    assert main(["status", str(path), "--store", f"{BUCKET_ROOT}/new"]) == 0
    assert "0 of 1 outputs done" in capsys.readouterr().out

    s3.client().put_object(Bucket=s3.bucket, Key="photos/cat.jpg", Body=b"x")
    assert main(["status", str(path), "--store", f"{BUCKET_ROOT}/photos"]) == 10
    assert "photos: not a store: it holds cat.jpg but no objects/" in capsys.readouterr().err
    assert load(path)["a"].output  # the file itself was never the problem


def test_json_on_an_object_store_is_json_alone(s3, tmp_path):
    """Airflow's connection code logs while the store is opened (through the standard
    library's handlers and through structlog's own): logs go to stderr, so a script
    reading --json from the command gets JSON only."""
    dag = Dag({"dag_id": "one"})
    dag.task("a", {"command": "true"})
    path = dag.save(tmp_path / "one.alamode")
    command = [sys.executable, "-m", "alamode_airflow.cli", "status", str(path)]
    done = subprocess.run(
        [*command, "--store", f"{BUCKET_ROOT}/json", "--json"],
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [row["task"] for row in json.loads(done.stdout)] == ["a"]
    assert "credentials retrieved" in done.stderr  # the log was there, on stderr
