"""docker-compose.yaml, .env and Dockerfile agree with each other and with the engine
(no Docker engine runs here, so the files are checked, not started)."""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

import pytest
import yaml

from a_la_mode import load

REPO = Path(__file__).parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    lines = (REPO / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source of each volume."""
    # "${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags": the target follows the last colon.
    return {target: source for source, target in (v.rsplit(":", 1) for v in service["volumes"])}


def default(value: str) -> str:
    """The default of a ${NAME:-default} value."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def test_the_official_topology_is_there(compose):
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
        assert services[name]["image"] == "${AIRFLOW_IMAGE_NAME:-alamode-airflow:latest}"
        assert services[name]["build"] == "."


def test_executor_and_backends_point_at_services_that_exist(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    hosts = {
        re.search(r"@(\w[\w-]*)", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).group(1),
        re.search(r"@(\w[\w-]*)", env["AIRFLOW__CELERY__BROKER_URL"]).group(1),
        re.search(r"//([\w-]+):", env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).group(1),
    }
    assert hosts == {"postgres", "redis", "airflow-apiserver"}


def test_every_service_signs_task_tokens_with_one_secret(compose, dotenv):
    """Without a shared secret each service makes its own, and the api-server refuses
    the tokens workers' tasks present."""
    secrets = {
        compose["services"][name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
        for name in AIRFLOW_SERVICES
    }
    assert secrets == {"${AIRFLOW_JWT_SECRET:?set AIRFLOW_JWT_SECRET in .env}"}
    assert dotenv["AIRFLOW_JWT_SECRET"]


def test_every_airflow_service_sees_the_same_dags_and_store(compose, dotenv):
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env, mounted = service["environment"], mounts(service)
        dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
        store = default(env["AIRFLOW__ALAMODE__STORAGE_ROOT"])
        assert mounted[dags].endswith("/dags"), name
        assert mounted[store] == "alamode-store", name
        assert store == dotenv["ALAMODE_STORAGE_ROOT"]
    assert "alamode-store" in compose["volumes"]


def test_the_example_runs_inside_a_mounted_folder(compose):
    service = compose["services"]["airflow-worker"]
    dags = service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
    cwd = posixpath.normpath(posixpath.join(dags, load(REPO / "dags/collage.alamode").meta["cwd"]))
    assert any(cwd.startswith(target + "/") for target in mounts(service))
    source = mounts(service)[posixpath.dirname(cwd)].replace("${AIRFLOW_PROJ_DIR:-.}", ".")
    assert (REPO / source / posixpath.basename(cwd) / "collage.py").is_file()


def test_the_s3_profile_gives_the_engine_a_bucket_and_a_connection(compose, dotenv):
    """With ``--profile s3`` and the two settings .env names, outputs go to MinIO
    through the connection every Airflow service carries."""
    services = compose["services"]
    assert services["minio"]["profiles"] == ["s3"]
    assert "mc mb --ignore-existing store/alamode" in services["minio-init"]["command"][1]
    env = services["airflow-worker"]["environment"]
    assert default(env["AIRFLOW__ALAMODE__STORAGE_CONN_ID"]) == ""
    connection = json.loads(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", env["AIRFLOW_CONN_ALAMODE_STORE"]))
    assert connection["conn_type"] == "aws"
    assert connection["extra"]["endpoint_url"] == "http://minio:9000"
    assert connection["login"] == dotenv["MINIO_ROOT_USER"]
    assert connection["password"] == dotenv["MINIO_ROOT_PASSWORD"]
    assert "ALAMODE_STORAGE_CONN_ID" in dotenv


def test_the_image_installs_this_package(dotenv):
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}", dockerfile, re.M)
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2" in dockerfile
    assert "[examples,s3,celery,postgres]" in dockerfile
    for package in ("a_la_mode", "alamode_airflow", "setup.cfg", "constraints.txt"):
        assert package in dockerfile
    assert dotenv["AIRFLOW_IMAGE_NAME"] == "alamode-airflow:latest"
