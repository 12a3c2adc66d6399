"""What one Airflow run means for a pipeline: its interval, the output IDs it needs,
and the tasks it was asked to rebuild. Shared by the plan task and every task.

A partitioned task's interval is the run's data interval exactly as Airflow records it
(and shows it in the UI). The factory gives a partitioned pipeline a data-interval
timetable, so every run Airflow makes with a logical date has one period of the
schedule, start < end. A run without a logical date has no interval, and a partitioned
task refuses it with a message saying how to run it instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
