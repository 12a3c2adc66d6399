"""Outputs per data interval: which tasks are partitioned, and their IDs for a run.

A pure pipeline has one output per task forever. A task whose spec says
``"partition": "interval"`` (or every task, when meta says so) has one output per data
interval instead, and so has every task downstream of it. For a run over the interval
[start, end) a partitioned task's output ID is::

    sha256(bencode({"interval": {"end": END, "start": START}, "output": FILE_ID}))

where FILE_ID is the task's output ID in the file and START/END are UTC timestamps
written ``YYYY-MM-DDTHH:MM:SSZ``. Unpartitioned tasks keep their file ID.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import bencode

from a_la_mode.errors import SpecValueError
from a_la_mode.ids import id_of
from a_la_mode.pipeline import Pipeline

KEY = "partition"
INTERVAL = "interval"


def _declared(value: Any, where: str) -> bool:
    if value is None:
        return False
    if value != INTERVAL:
        raise SpecValueError(f"must be {INTERVAL!r} (the only partitioning so far)", key=where)
    return True


def partitioned(pipeline: Pipeline) -> frozenset[str]:
    """Names of the tasks with one output per interval: declared, or downstream of one.

    >>> from a_la_mode import Dag, load
    >>> dag = Dag({})
    >>> _ = dag.task("raw", {"partition": "interval"}) >> dag.task("daily", {})
    >>> _ = dag.task("lookup", {})
    >>> sorted(partitioned(load(dag.bencode())))
    ['daily', 'raw']
    """
    everything = _declared(pipeline.meta.get(KEY), f"meta.{KEY}")
    result: set[str] = set()
    for task in pipeline:
        own = _declared(task.spec.get(KEY), f"tasks.{task.name}.{KEY}")
        if everything or own or any(dep in result for dep in task.inputs):
            result.add(task.name)
    return frozenset(result)


def timestamp(moment: datetime) -> str:
    """An interval bound as the ID rule writes it: UTC, seconds, ``Z``.

    >>> timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    '2026-01-02T03:04:05Z'
    """
    if moment.tzinfo is None:
        raise ValueError("interval bounds must carry a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def partition_preimage(file_id: str, start: str, end: str) -> bytes:
    return bencode.encode({"interval": {"end": end, "start": start}, "output": file_id})


def partition_id(file_id: str, start: str, end: str) -> str:
    """The output ID of a partitioned task's file ID over [start, end)."""
    return id_of(partition_preimage(file_id, start, end))


def run_outputs(
    outputs: Mapping[str, str], partitioned_names: frozenset[str], start: str, end: str
) -> dict[str, str]:
    """Each task's output ID for one run: file IDs, with partitioned ones replaced."""
    return {
        name: partition_id(output, start, end) if name in partitioned_names else output
        for name, output in outputs.items()
    }
