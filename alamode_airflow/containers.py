"""Running a task's command in its spec's ``image``: Docker or Kubernetes.

A container sees the store at ``/alamode``, but only the parts its command may use:
each input's folder, mounted read-only at ``/alamode/objects/<id>/<generation>/data``,
and the attempt's own output folder, read-write at ``/alamode/staging/<...>/data``.
Every location the command is given is translated accordingly, so it sees the same
variables (``ALAMODE_OUTPUT``, ``ALAMODE_INPUT_<NAME>``, ...) as with the local
runner. The container's operator comes from Airflow's providers (docker,
cncf.kubernetes); the commit protocol stays ours. Container runners need a storage
root that the containers can mount (a local or shared volume).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from a_la_mode import AlamodeError
from alamode_airflow import settings
from alamode_airflow.operators import AlamodeCommandOperator
from alamode_airflow.runner import variables
from alamode_airflow.runs import RunInfo
from alamode_airflow.store import OutputStore

CONTAINER_ROOT = PurePosixPath("/alamode")
VOLUME = "alamode-store"


class AlamodeContainerOperator(AlamodeCommandOperator):
    """Runs the command in a container; subclasses say which kind."""

    def produce(self, context: Any, output: Path, inputs: Mapping[str, str], run: RunInfo) -> None:
        self._container = self.container_operator(output, inputs, run)
        self.log.info("running in %s: %s", self.image, self.command)
        self._container.execute(context)

    def on_kill(self) -> None:
        """A task killed (its ``execution_timeout``, a mark as failed) stops its
        container or pod too, which would otherwise run on beside the retry."""
        container = getattr(self, "_container", None)
        if container is not None:
            container.on_kill()

    def container_operator(self, output: Path, inputs: Mapping[str, str], run: RunInfo):
        """The provider operator that runs this attempt (built, not started)."""
        raise NotImplementedError

    def store_root(self) -> Path:
        store = OutputStore.configured(self.storage_root)
        if not store.local:
            raise AlamodeError(
                f"the {self.runner_name} runner needs a storage root containers can mount, "
                f"not {store.root}",
                task=self.task_id,
            )
        return Path(store.root.path)

    def container_variables(self, output: Path, inputs: Mapping[str, str], run: RunInfo):
        """The command's variables, and what to mount: (location in the store relative
        to its root, read-only) for the output and each input."""
        root = self.store_root()
        inside = {name: str(_inside(root, Path(path))) for name, path in inputs.items()}
        env = variables(self.invocation(str(_inside(root, output)), inside, run))
        mounts = [(_relative(root, output), False)]
        mounts += [(_relative(root, Path(path)), True) for path in inputs.values()]
        return root, env, mounts


class AlamodeDockerOperator(AlamodeContainerOperator):
    runner_name = "docker"

    def container_operator(self, output: Path, inputs: Mapping[str, str], run: RunInfo):
        docker = _provider("airflow.providers.docker.operators.docker", "docker")
        from docker.types import Mount

        root, env, shared = self.container_variables(output, inputs, run)
        mounts = [
            Mount(str(CONTAINER_ROOT / rel), str(root / rel), type="bind", read_only=read_only)
            for rel, read_only in shared
        ]
        return docker.DockerOperator(
            task_id=f"{self.task_id}.docker",
            image=self.image,
            command=["bash", "-c", self.command],
            environment=env,
            mounts=mounts,
            mount_tmp_dir=False,
            auto_remove="success",
            docker_url=settings.get("docker_url"),
        )


class AlamodeKubernetesOperator(AlamodeContainerOperator):
    """Runs the command in a pod of its own. A file's ``executor_config.pod_override``
    (GPU limits, node selectors, tolerations) is for the pod the command runs in, so it
    is taken out of what the executor sees (a KubernetesExecutor would otherwise give
    it to the worker pod too, which then holds a GPU while it waits) and merged into
    the command's pod, the provider's ``full_pod_spec``."""

    runner_name = "kubernetes"

    def __init__(self, *, executor_config: dict | None = None, **kwargs: Any) -> None:
        config = dict(executor_config or {})
        pod_override = config.pop("pod_override", None)
        super().__init__(executor_config=config, **kwargs)
        self.pod_override = pod_override

    def container_operator(self, output: Path, inputs: Mapping[str, str], run: RunInfo):
        pod = _provider("airflow.providers.cncf.kubernetes.operators.pod", "cncf-kubernetes")
        from kubernetes.client import models as k8s

        _, env, shared = self.container_variables(output, inputs, run)
        claim = settings.get("kubernetes_store_claim") or VOLUME
        return pod.KubernetesPodOperator(
            task_id=f"{self.task_id}.pod",
            name=_pod_name(self.task_id),
            namespace=settings.get("kubernetes_namespace") or "default",
            image=self.image,
            cmds=["bash", "-c"],
            arguments=[self.command],
            env_vars=env,
            labels={"alamode-output": env["ALAMODE_OUTPUT_ID"][:63]},
            volumes=[
                k8s.V1Volume(
                    name=VOLUME,
                    persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                        claim_name=claim
                    ),
                )
            ],
            # Parts of the claim: the claim's root is the store's root.
            volume_mounts=[
                k8s.V1VolumeMount(
                    name=VOLUME,
                    mount_path=str(CONTAINER_ROOT / rel),
                    sub_path=rel,
                    read_only=read_only,
                )
                for rel, read_only in shared
            ],
            full_pod_spec=self.pod_override,
            on_finish_action="delete_succeeded_pod",
        )


RUNNERS: dict[str, type[AlamodeCommandOperator]] = {
    "local": AlamodeCommandOperator,
    "docker": AlamodeDockerOperator,
    "kubernetes": AlamodeKubernetesOperator,
}


def _relative(root: Path, path: Path) -> str:
    """A location under the store's root, relative to it."""
    return path.relative_to(root).as_posix()


def _inside(root: Path, path: Path) -> PurePosixPath:
    """Where a location under the store's root is seen from inside the container."""
    return CONTAINER_ROOT / _relative(root, path)


def _pod_name(task: str) -> str:
    # Pod names are DNS labels: lower case letters, digits and '-'.
    return "alamode-" + re.sub(r"[^a-z0-9-]+", "-", task.lower()).strip("-")[:40]


def _provider(module: str, extra: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise AlamodeError(
            f"this runner needs apache-airflow-providers-{extra} "
            f"(pip install 'alamode-airflow[{extra.split('-')[-1]}]')"
        ) from exc
