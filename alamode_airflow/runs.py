"""What one Airflow run means for a pipeline: its interval, the output IDs it needs,
and the tasks it was asked to rebuild. Shared by the plan task and every task.

A partitioned task's interval is the run's data interval exactly as Airflow records it
(and shows it in the UI). The factory gives a partitioned pipeline a data-interval
timetable, so every run Airflow makes with a logical date has one period of the
schedule, start < end. A run without a logical date has no interval, and a partitioned
task refuses it with a message saying how to run it instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from a_la_mode import AlamodeError
from a_la_mode.partitions import partition_id, timestamp

ALL = "all"
NO_INTERVAL = (
    "is partitioned but this run has no data interval (a manual run without a logical"
    " date): trigger it with one (`airflow dags trigger DAG_ID -l 2026-01-02`, or the"
    " logical date in the trigger form), or run it through the schedule or"
    " `airflow backfill create`"
)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    interval: tuple[str, str] | None
    rebuild: frozenset[str]

    def output_id(self, task: str, file_id: str, partitioned: bool) -> str:
        if not partitioned:
            return file_id
        if self.interval is None:
            raise AlamodeError(NO_INTERVAL, task=task)
        start, end = self.interval
        if start >= end:
            raise AlamodeError(
                f"is partitioned but the run's data interval [{start}, {end}) is empty;"
                " its DAG must be re-parsed (a partitioned pipeline gets a data-interval"
                " timetable)",
                task=task,
            )
        return partition_id(file_id, start, end)


def interval_of(context: Mapping[str, Any]) -> tuple[str, str] | None:
    """The run's data interval as ID timestamps; a run without one (Airflow 3 allows
    runs with no logical date) has None."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        return None
    return timestamp(start), timestamp(end)


def requested_rebuilds(params: Mapping[str, Any], names: Iterable[str]) -> frozenset[str]:
    """The task names the trigger form's ``rebuild`` param asks for (``all`` = every
    task); an unknown name is an error rather than a silent no-op."""
    asked = params.get("rebuild") or []
    if isinstance(asked, str):
        asked = [asked]
    if not isinstance(asked, list) or not all(isinstance(name, str) for name in asked):
        raise AlamodeError(f"rebuild must be a task name, a list of them or 'all', not {asked!r}")
    names = frozenset(names)
    if ALL in asked:
        return names
    unknown = sorted(set(asked) - names)
    if unknown:
        raise AlamodeError(f"rebuild names unknown tasks: {', '.join(unknown)}")
    return frozenset(asked)


def expand_rebuilds(asked: frozenset[str], inputs: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """The tasks a run rebuilds: those ``asked`` and everything downstream of them, since
    their outputs were made from what is being replaced. ``inputs`` maps every task, in
    topological order, to its inputs: one pass, each dependency looked at once, so the
    cost grows with the DAG's size however many tasks are asked (``all`` costs a pass
    over the names, with no dependency looked at)."""
    rebuilt = set(asked)
    for task, names in inputs.items():
        if task not in rebuilt and any(name in rebuilt for name in names):
            rebuilt.add(task)
    return frozenset(rebuilt)


def rebuilds_for(task: Any, plan: Mapping[str, Any]) -> frozenset[str]:
    """What a task needs of the plan's rebuild set: ``{task_id}`` when this run rebuilds
    ``task`` (an Airflow task of the DAG), else nothing. The plan passes only the names
    asked (``rebuild_asked``, small whatever the DAG's size); the task resolves them
    against its own ancestors: its ``ancestry`` (the pipeline's graph, which a task
    built alone in its task process keeps), else one walk up its DAG. A plan that does
    not say what was asked (an older engine's) passes the whole set as ``rebuild``."""
    asked = plan.get("rebuild_asked")
    if asked is None:
        return frozenset(plan.get("rebuild", ()))
    mine = frozenset({task.task_id})
    if not asked:
        return frozenset()
    if ALL in asked or task.task_id in asked:
        return mine
    ancestry = getattr(task, "ancestry", None)
    ancestors = ancestry() if ancestry else task.get_flat_relative_ids(upstream=True)
    return mine if ancestors & set(asked) else frozenset()
