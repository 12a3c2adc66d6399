"""The plan task: first in every DAG, it decides in one pass which outputs this run
already has, and marks those tasks skipped with a single call to Airflow."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from alamode_airflow._compat import BaseOperator, DownstreamTasksSkipped
from alamode_airflow.currency import assess
from alamode_airflow.operators import PLAN_TASK, PLAN_XCOM, REBUILD_XCOM
from alamode_airflow.runs import ALL, RunInfo, expand_rebuilds, interval_of, requested_rebuilds
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
        inputs = self.inputs()
        asked, rebuild = self.rebuilds(context, inputs)
        run = RunInfo(context["run_id"], interval_of(context), rebuild)
        targets = {
            task_id: run.output_id(task_id, file_id, task_id in self.partitioned)
            for task_id, file_id in self.outputs.items()
        }
        warn = self.log.warning
        look_all = functools.partial(store.lookup_all, warn=warn, pack=self.dag_id, by_receipt=True)
        verdicts = assess(targets, inputs, look_all, run.rebuild, store.with_records)
        cached = sorted(task for task, verdict in verdicts.items() if verdict.current)
        self._log(verdicts, cached, asked, rebuild)
        stale = {task: v.stale for task, v in verdicts.items() if v.stale}
        to_run = [t for t in self.outputs if t not in cached]
        plan = {"skipped": cached, "to_run": to_run, "stale": stale, "interval": run.interval}
        # ``rebuild_asked`` is what each task resolves against its own DAG (runs.rebuilds_for);
        # the whole ``rebuild`` set stays for tasks that read it (an engine before it).
        plan |= {"rebuild_asked": sorted(asked), "rebuild": sorted(rebuild)}
        context["ti"].xcom_push(PLAN_XCOM, plan)
        if asked:  # what each task of the run reads (operators.REBUILD_XCOM)
            context["ti"].xcom_push(REBUILD_XCOM, sorted(asked))
        if cached:
            raise DownstreamTasksSkipped(tasks=cached)

    def _log(self, verdicts, cached: list[str], asked: frozenset[str], rebuild) -> None:
        for task, verdict in verdicts.items():
            if verdict.current:
                self.log.info(
                    "%s: output %s already produced by %s; skipping",
                    task,
                    verdict.output_id[:12],
                    verdict.found.made.produced_by(),
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
            f" (rebuilding {', '.join(sorted(asked))} and what is downstream: {len(rebuild)} tasks)"
            if asked
            else "",
        )

    def rebuilds(
        self, context: Any, inputs: dict[str, list[str]]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """What this run was asked to rebuild (task names, or ``{"all"}``), and the
        tasks it rebuilds: those, and everything downstream of them."""
        # The trigger form's field when the DAG has one, else the run's conf.
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        params = context.get("params") or {}
        asked = requested_rebuilds(params if params.get("rebuild") else conf, self.outputs)
        if asked == frozenset(self.outputs):
            return frozenset({ALL}), asked
        return asked, expand_rebuilds(asked, inputs)

    def inputs(self) -> dict[str, list[str]]:
        """Each task's inputs, as its records name them (the tasks upstream of it in
        the DAG, but the plan task); in the topological order of ``outputs``."""
        return {task_id: list(self.dag.get_task(task_id).inputs) for task_id in self.outputs}
