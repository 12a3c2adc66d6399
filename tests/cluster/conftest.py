"""One real cluster for the module: PostgreSQL, Redis, an S3 server, Airflow's
services with the CeleryExecutor and two Celery workers, all on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loopback.celery import cluster

REPO = Path(__file__).parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.airflow)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, request):
    """The running cluster, with the dags folder the module's ``write_dags`` fills."""
    base = tmp_path_factory.mktemp("cluster")
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "alamode_dags.py", dags)
    # The collage file runs its scripts from ../examples/collage, relative to itself.
    (base / "examples").symlink_to(REPO / "examples")
    request.module.write_dags(dags, base)
    with cluster(base / "home", dags) as running:
        yield running
