"""Container runners: the Docker container and the Kubernetes pod a task would start,
rendered by Airflow's own providers (no container engine runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from a_la_mode import Dag, SpecValueError, load
from alamode_airflow.containers import AlamodeDockerOperator, AlamodeKubernetesOperator
from alamode_airflow.factory import build_dag, runner_class
from alamode_airflow.runs import RunInfo

IMAGE = "registry.example/collage:1qe34"


def built(tmp_path: Path, runner: str):
    dag = Dag({"dag_id": "boxed", "runner": runner})
    dl = dag.task("download", {"image": IMAGE, "command": "python dl.py"})
    dag.task("blur", {"image": IMAGE, "command": "python blur.py", "env": {"RADIUS": 4}}).add_dep(
        dl
    )
    path = dag.save(tmp_path / "dags" / "boxed.alamode")
    return build_dag(load(path), path, storage_root=str(tmp_path / "store")), load(path)


def attempt(tmp_path: Path, pipeline):
    """Host paths of one attempt of blur: its staging output and its input."""
    store = tmp_path / "store"
    output = store / "staging" / f"{pipeline['blur'].output}.x1" / "data"
    inputs = {"download": str(store / "objects" / pipeline["download"].output / "0" / "data")}
    return output, inputs, RunInfo("manual__1", None, frozenset())


def test_docker_container_sees_its_inputs_read_only_and_its_output(tmp_path):
    dag, pipeline = built(tmp_path, "docker")
    blur = dag.get_task("blur")
    assert isinstance(blur, AlamodeDockerOperator)
    container = blur.container_operator(*attempt(tmp_path, pipeline))
    assert container.image == IMAGE
    assert container.command == ["bash", "-c", "python blur.py"]
    env = container.environment
    assert env["ALAMODE_OUTPUT"] == f"/alamode/staging/{pipeline['blur'].output}.x1/data"
    assert env["ALAMODE_INPUT_DOWNLOAD"] == f"/alamode/objects/{pipeline['download'].output}/0/data"
    assert env["ALAMODE_OUTPUT_ID"] == pipeline["blur"].output
    assert env["RADIUS"] == "4"
    assert "PATH" not in env  # the image's own PATH, not the worker's
    # Only the attempt's output is writable; the input is read-only; nothing else shows.
    output, inputs, _ = attempt(tmp_path, pipeline)
    mounts = {m["Target"]: (m["Source"], m["Type"], m["ReadOnly"]) for m in container.mounts}
    assert mounts == {
        env["ALAMODE_OUTPUT"]: (str(output), "bind", False),
        env["ALAMODE_INPUT_DOWNLOAD"]: (inputs["download"], "bind", True),
    }


def test_kubernetes_pod_mounts_its_inputs_read_only_from_the_store_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__KUBERNETES_STORE_CLAIM", "outputs-rwx")
    monkeypatch.setenv("AIRFLOW__ALAMODE__KUBERNETES_NAMESPACE", "pipelines")
    dag, pipeline = built(tmp_path, "kubernetes")
    blur = dag.get_task("blur")
    assert isinstance(blur, AlamodeKubernetesOperator)
    pod = blur.container_operator(*attempt(tmp_path, pipeline)).build_pod_request_obj(dry_run=True)
    (container,) = pod.spec.containers
    assert container.image == IMAGE
    assert container.command == ["bash", "-c"]
    assert container.args == ["python blur.py"]
    env = {var.name: var.value for var in container.env}
    (volume,) = pod.spec.volumes
    assert env["ALAMODE_OUTPUT"] == f"/alamode/staging/{pipeline['blur'].output}.x1/data"
    assert env["ALAMODE_INPUT_DOWNLOAD"] == f"/alamode/objects/{pipeline['download'].output}/0/data"
    assert env["ALAMODE_TASK"] == "blur"
    mounts = {m.mount_path: (m.name, m.sub_path, m.read_only) for m in container.volume_mounts}
    assert mounts == {
        env["ALAMODE_OUTPUT"]: (volume.name, env["ALAMODE_OUTPUT"][len("/alamode/") :], False),
        env["ALAMODE_INPUT_DOWNLOAD"]: (
            volume.name,
            f"objects/{pipeline['download'].output}/0/data",
            True,
        ),
    }
    assert volume.persistent_volume_claim.claim_name == "outputs-rwx"
    assert pod.metadata.namespace == "pipelines"
    assert pod.metadata.labels["alamode-output"] == pipeline["blur"].output[:63]
    assert pod.metadata.name.startswith("alamode-blur")


def test_container_runner_needs_an_image(tmp_path):
    dag = Dag({"runner": "docker"})
    dag.task("bare", {"command": "true"})
    path = dag.save(tmp_path / "bare.alamode")
    with pytest.raises(SpecValueError, match="task 'bare': key 'image': a container runner"):
        build_dag(load(path), path)


def test_runner_from_config_and_unknown_runner(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__RUNNER", "kubernetes")
    assert runner_class(None) is AlamodeKubernetesOperator
    assert runner_class("docker") is AlamodeDockerOperator
    with pytest.raises(SpecValueError, match="unknown runner 'podman'"):
        runner_class("podman")
