"""A file's ``executor_config.pod_override``: a Kubernetes pod, written as plain data.

The KubernetesExecutor merges a task's ``executor_config["pod_override"]`` (a
``kubernetes.client.V1Pod``) into the pod it starts for the task. A file can only hold
plain data, so the override is written as the pod's YAML would be (camelCase keys:
``nodeSelector``, ``resources.limits``) and turned into a V1Pod here, by the provider's
own reader. That reader drops every key the Kubernetes model does not know; a dropped
key would be an override silently not applied (``nodeSelecter``), so each one is
refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a_la_mode import SpecValueError


def pod_override(value: Any, key: str, task: str | None) -> Any:
    """``value`` as a V1Pod; SpecValueError names the first key Kubernetes would drop."""
    if not isinstance(value, Mapping):
        raise SpecValueError(f"must be a dictionary (a pod), not {value!r}", task=task, key=key)
    try:
        from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
        from kubernetes.client import ApiClient
    except ImportError:
        raise SpecValueError(
            "needs the Kubernetes provider (pip install 'alamode-airflow[kubernetes]')",
            task=task,
            key=key,
        ) from None
    try:
        pod = PodGenerator.deserialize_model_dict(dict(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise SpecValueError(f"is not a Kubernetes pod: {exc}", task=task, key=key) from None
    dropped = _dropped(value, ApiClient().sanitize_for_serialization(pod), key)
    if dropped:
        raise SpecValueError(
            "is not a field of a Kubernetes pod (keys are camelCase, as in the pod's YAML)",
            task=task,
            key=dropped,
        )
    return pod


def _dropped(written: Any, read: Any, key: str) -> str | None:
    """The key path of the first value in ``written`` that ``read`` lost, or None."""
    if isinstance(written, Mapping):
        if not isinstance(read, Mapping):
            return key
        for name, item in written.items():
            if name not in read:
                return f"{key}.{name}"
            lost = _dropped(item, read[name], f"{key}.{name}")
            if lost:
                return lost
    elif isinstance(written, (list, tuple)):
        if not isinstance(read, list) or len(read) != len(written):
            return key
        for i, (item, back) in enumerate(zip(written, read, strict=True)):
            lost = _dropped(item, back, f"{key}[{i}]")
            if lost:
                return lost
    return None
