"""What one Airflow run means for a pipeline: its interval, the output IDs it needs,
and the tasks it was asked to rebuild. Shared by the plan task and every task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from a_la_mode import AlamodeError
from a_la_mode.partitions import partition_id, timestamp

ALL = "all"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    interval: tuple[str, str] | None
    rebuild: frozenset[str]

    def output_id(self, task: str, file_id: str, partitioned: bool) -> str:
        if not partitioned:
            return file_id
        if self.interval is None:
            raise AlamodeError("is partitioned but the run has no data interval", task=task)
        return partition_id(file_id, *self.interval)


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
