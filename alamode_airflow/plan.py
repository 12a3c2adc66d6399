"""The plan task: first in every DAG, it decides in one pass which outputs this run
already has, and marks those tasks skipped with a single call to Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alamode_airflow._compat import BaseOperator, DownstreamTasksSkipped
from alamode_airflow.operators import PLAN_TASK, PLAN_XCOM
from alamode_airflow.runs import RunInfo, interval_of, requested_rebuilds
from alamode_airflow.store import OutputStore

__all__ = ["PLAN_TASK", "AlamodePlanOperator"]


class AlamodePlanOperator(BaseOperator):
    """Looks up every task's output for this run and skips the recorded ones, except
    those the run was asked to rebuild (and everything downstream of them)."""

    ui_color = "#e8e0f5"

    def __init__(
        self,
        *,
        outputs: Mapping[str, str],
        partitioned: frozenset[str] = frozenset(),
        storage_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.outputs = dict(outputs)
        self.partitioned = frozenset(partitioned)
        self.storage_root = storage_root

    def execute(self, context: Any) -> None:
        store = OutputStore.configured(self.storage_root)
        run = RunInfo(context["run_id"], interval_of(context), self._rebuilds(context))
        cached = {}
        for task_id, file_id in self.outputs.items():
            if task_id in run.rebuild:
                continue
            target = run.output_id(task_id, file_id, task_id in self.partitioned)
            found = store.settle(target, self.log.warning)
            if found.done:
                cached[task_id] = found.record
                self.log.info(
                    "%s: output %s already produced by %s; skipping",
                    task_id,
                    target[:12],
                    found.record.produced_by(),
                )
        to_run = [t for t in self.outputs if t not in cached]
        self.log.info(
            "%d of %d outputs recorded; to run: %s%s",
            len(cached),
            len(self.outputs),
            ", ".join(to_run) or "nothing",
            f" (rebuilding {', '.join(sorted(run.rebuild))})" if run.rebuild else "",
        )
        plan = {"skipped": sorted(cached), "to_run": to_run, "rebuild": sorted(run.rebuild)}
        context["ti"].xcom_push(PLAN_XCOM, {**plan, "interval": run.interval})
        if cached:
            raise DownstreamTasksSkipped(tasks=sorted(cached))

    def _rebuilds(self, context: Any) -> frozenset[str]:
        """The tasks to rebuild: those asked for, and everything downstream of them,
        since their outputs were made from what is being replaced."""
        # The trigger form's field when the DAG has one, else the run's conf.
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        params = context.get("params") or {}
        asked = requested_rebuilds(params if params.get("rebuild") else conf, self.outputs)
        expanded = set(asked)
        for name in asked:
            expanded |= self.dag.get_task(name).get_flat_relative_ids(upstream=False)
        return frozenset(expanded)
