"""The plan task: first in every DAG, it decides in one pass which outputs this run
already has, and marks those tasks skipped with a single call to Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alamode_airflow._compat import BaseOperator, DownstreamTasksSkipped
from alamode_airflow.currency import assess
from alamode_airflow.operators import PLAN_TASK, PLAN_XCOM
from alamode_airflow.runs import RunInfo, interval_of, requested_rebuilds
from alamode_airflow.store import OutputStore

__all__ = ["PLAN_TASK", "AlamodePlanOperator"]


class AlamodePlanOperator(BaseOperator):
    """Looks up every task's output for this run and skips the current ones: recorded,
    and made from the current generation of every input (``currency.assess``). The
    tasks the run was asked to rebuild, and everything downstream of them, run.
    ``outputs`` lists the tasks in topological order."""

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
        targets = {
            task_id: run.output_id(task_id, file_id, task_id in self.partitioned)
            for task_id, file_id in self.outputs.items()
        }
        verdicts = assess(
            targets, self._inputs(), lambda oid: store.settle(oid, self.log.warning), run.rebuild
        )
        cached = sorted(task for task, verdict in verdicts.items() if verdict.current)
        for task, verdict in verdicts.items():
            if verdict.current:
                self.log.info(
                    "%s: output %s already produced by %s; skipping",
                    task,
                    verdict.output_id[:12],
                    verdict.found.record.produced_by(),
                )
            elif verdict.stale:
                self.log.info(
                    "%s: output %s is stale: %s", task, verdict.output_id[:12], verdict.stale
                )
        to_run = [t for t in self.outputs if t not in cached]
        self.log.info(
            "%d of %d outputs current; to run: %s%s",
            len(cached),
            len(self.outputs),
            ", ".join(to_run) or "nothing",
            f" (rebuilding {', '.join(sorted(run.rebuild))})" if run.rebuild else "",
        )
        stale = {task: v.stale for task, v in verdicts.items() if v.stale}
        plan = {"skipped": cached, "to_run": to_run, "rebuild": sorted(run.rebuild)}
        context["ti"].xcom_push(PLAN_XCOM, {**plan, "stale": stale, "interval": run.interval})
        if cached:
            raise DownstreamTasksSkipped(tasks=cached)

    def _inputs(self) -> dict[str, list[str]]:
        """Each task's inputs: its upstream tasks in the DAG, but the plan task."""
        return {
            task_id: [up for up in self.dag.get_task(task_id).upstream_task_ids if up != PLAN_TASK]
            for task_id in self.outputs
        }

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
