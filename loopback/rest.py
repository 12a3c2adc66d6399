"""Airflow's REST API (v2), as a user's script drives it: create pools, unpause, trigger,
wait, read task states. The deployments here run the simple auth manager with every user an
admin, so requests carry no token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from loopback.wait import until

FINISHED = frozenset({"success", "failed"})


class RestError(RuntimeError):
    """The API answered with an error, or not in time."""


@dataclass(frozen=True)
class Api:
    url: str  # http://host:port

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)
        if not response.ok:
            raise RestError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait_dags(self, dag_ids: list[str], timeout: float = 240.0) -> None:
        """Until the dag-processor has parsed every DAG in ``dag_ids``."""

        def parsed() -> bool:
            known = {d["dag_id"] for d in self.call("GET", "/dags", params={"limit": 1000})["dags"]}
            return set(dag_ids) <= known

        until(parsed, timeout=timeout, every=2, what=f"DAGs {sorted(dag_ids)} not all parsed")

    def set_pool(self, name: str, slots: int, description: str = "") -> None:
        """Create pool ``name`` with ``slots`` slots, as the UI's Admin > Pools does."""
        body = {"name": name, "slots": slots, "description": description}
        self.call("POST", "/pools", json=body)

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, logical_date: str, conf: dict | None = None) -> str:
        """A new run at ``logical_date`` (ISO 8601); returns its run ID."""
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600.0) -> str:
        """The run's final state (success or failed)."""

        def finished() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in FINISHED else None

        return until(
            finished, timeout=timeout, every=1, what=f"run {run_id} of {dag_id} unfinished"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.call("GET", path, params={"limit": 1000})["task_instances"]

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Each task's state in the run."""
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
