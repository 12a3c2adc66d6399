"""Container runners: the Docker container and the Kubernetes pod a task would start,
and the worker pod the KubernetesExecutor would start for a task, all rendered by
Airflow's own providers (no container engine runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.providers.cncf.kubernetes import kubernetes_executor_templates
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
from airflow.serialization.serialized_objects import DagSerialization
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

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


#: What a user writes for a GPU task, as in a pod's YAML.
GPU_POD = {
    "spec": {
        "containers": [{"name": "base", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        "nodeSelector": {"accelerator": "nvidia-a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
}
#: The worker pod template the KubernetesExecutor starts from (the provider's example).
POD_TEMPLATE = Path(kubernetes_executor_templates.__file__).parent / "basic_template.yaml"


def worker_pod(task) -> dict:
    """The pod the KubernetesExecutor would create to run ``task``, as sent to the
    Kubernetes API: its executor_config read and reconciled as the executor does."""
    pod = PodGenerator.construct_pod(
        dag_id=task.dag_id,
        task_id=task.task_id,
        pod_id=f"{task.dag_id}-{task.task_id}",
        try_number=1,
        kube_image="apache/airflow:3",
        date=None,
        args=["airflow", "tasks", "run", task.dag_id, task.task_id, "manual__1"],
        pod_override_object=PodGenerator.from_obj(task.executor_config),
        base_worker_pod=PodGenerator.deserialize_model_file(str(POD_TEMPLATE)),
        namespace="pipelines",
        scheduler_job_id="1",
        run_id="manual__1",
    )
    return ApiClient().sanitize_for_serialization(pod)


def trainer(tmp_path: Path):
    """A DAG whose ``train`` task asks for a GPU pod; ``prepare`` asks for nothing."""
    dag = Dag({"dag_id": "trainer"})
    prepare = dag.task("prepare", {"command": "python prepare.py"})
    config = {"pod_override": GPU_POD}
    dag.task("train", {"command": "python train.py"}, executor_config=config).add_dep(prepare)
    path = dag.save(tmp_path / "trainer.alamode")
    return build_dag(load(path), path, storage_root=str(tmp_path / "store"))


def test_kubernetes_executor_pod_gets_the_files_pod_override(tmp_path):
    """A task's executor_config in the file's meta reaches the pod its command runs in
    (a GPU, the node that has one, the taint it tolerates), merged into the worker pod
    template; a task without one gets the template's pod."""
    built = trainer(tmp_path)
    assert isinstance(built.get_task("train").executor_config["pod_override"], k8s.V1Pod)
    pod = worker_pod(built.get_task("train"))
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "apache/airflow:3"
    assert container["args"][:5] == ["airflow", "tasks", "run", "trainer", "train"]
    limits = container["resources"]["limits"]
    assert {key: str(value) for key, value in limits.items()} == {"nvidia.com/gpu": "1"}
    assert pod["spec"]["nodeSelector"] == {"accelerator": "nvidia-a100"}
    assert pod["spec"]["tolerations"] == GPU_POD["spec"]["tolerations"]
    # The template's volumes, mounts and service account stay.
    volumes = {volume["name"] for volume in pod["spec"]["volumes"]}
    assert volumes == {"airflow-logs", "airflow-config"}
    assert len(container["volumeMounts"]) == 3
    assert pod["spec"]["serviceAccountName"] == "airflow-worker"
    plain = worker_pod(built.get_task("prepare"))
    assert "nodeSelector" not in plain["spec"]
    assert "tolerations" not in plain["spec"]
    assert plain["spec"]["containers"][0]["resources"] == {}


def test_pod_override_survives_dag_serialization(tmp_path):
    """The scheduler, which hands executor_config to the executor, reads the DAG the
    dag-processor serialized to JSON: the override is still a pod, rendering the same."""
    built = trainer(tmp_path)
    stored = json.loads(json.dumps(DagSerialization.to_dict(built)))
    restored = DagSerialization.from_dict(stored).get_task("train")
    assert isinstance(restored.executor_config["pod_override"], k8s.V1Pod)
    pod = worker_pod(restored)
    assert pod == worker_pod(built.get_task("train"))
    assert pod["spec"]["nodeSelector"] == {"accelerator": "nvidia-a100"}


def test_kubernetes_runner_gives_the_pod_override_to_the_command_pod_only(tmp_path):
    dag = Dag({"dag_id": "gpu", "runner": "kubernetes"})
    override = {
        "spec": {
            "nodeSelector": {"accelerator": "a100"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "base", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        }
    }
    dag.task("download", {"image": IMAGE, "command": "python dl.py"})
    dag.task(
        "blur",
        {"image": IMAGE, "command": "python blur.py"},
        executor_config={"pod_override": override},
    ).add_dep("download")
    path = dag.save(tmp_path / "dags" / "gpu.alamode")
    pipeline = load(path)
    blur = build_dag(pipeline, path, storage_root=str(tmp_path / "store")).get_task("blur")
    # The worker pod a KubernetesExecutor starts stays plain: no GPU held while waiting.
    assert "pod_override" not in blur.executor_config
    pod = blur.container_operator(*attempt(tmp_path, pipeline)).build_pod_request_obj(dry_run=True)
    (container,) = pod.spec.containers
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert container.args == ["python blur.py"]  # the command's container, merged
    assert pod.spec.node_selector == {"accelerator": "a100"}
    assert [t.key for t in pod.spec.tolerations] == ["gpu"]


def test_a_killed_task_stops_its_container(tmp_path):
    dag, pipeline = built(tmp_path, "docker")
    blur = dag.get_task("blur")
    blur.on_kill()  # nothing started yet: nothing to stop, no error
    container = blur.container_operator(*attempt(tmp_path, pipeline))
    stopped = []
    container.on_kill = lambda: stopped.append(container.image)
    blur._container = container  # as produce() leaves it while the container runs
    blur.on_kill()
    assert stopped == [IMAGE]
