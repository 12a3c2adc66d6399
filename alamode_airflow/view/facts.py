"""What the pages say, gathered with the engine's own functions: a DAG's outputs as
``alamode status`` sees them with ``alamode explain``'s reasons, a task instance's
record, an output's lineage.

A DAG page costs what ``alamode status`` costs, one batched walk of the store
(``history.status``, which calls ``store.lookup_all`` once) and never a lookup per
task, plus, for each output that is not current, the markers of its task's newest
earlier records (``explain``'s nearest earlier output, ``nearest``), read for those tasks
together in one pool.
``history.explain`` itself is not called per task: it assesses the task's ancestors
again each time, which over a DAG would be quadratic; the verdicts ``status`` already
made give it all but the nearest record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from a_la_mode import Pipeline
from a_la_mode.partitions import partitioned, timestamp
from alamode_airflow.history import Explanation, TaskStatus, Verdict, status
from alamode_airflow.records import SuccessRecord
from alamode_airflow.runs import RunInfo
from alamode_airflow.store import OutputStore
from alamode_airflow.task_index import UNINDEXED, unindexed
from alamode_airflow.view.nearest import explain_all


@dataclass(frozen=True)
class TaskRow:
    status: TaskStatus
    explanation: Explanation


def dag_rows(pipeline: Pipeline, store: OutputStore, dag_id: str) -> list[TaskRow]:
    """Each task of ``pipeline`` in topological order: its output's state and what the
    next run does with it, and why."""
    rows = status(pipeline, store)
    needs = [row.task for row in rows if _verdict(row) is None]
    note = UNINDEXED if needs and unindexed(store) else ""
    nearest = explain_all(pipeline, needs, store, dag_id, note)
    return [TaskRow(row, _verdict(row) or nearest[row.task]) for row in rows]


def row_dags(rows: Iterable[TaskRow]) -> set[str]:
    """The DAGs whose records the rows name (an output may be another DAG's)."""
    records = []
    for row in rows:
        records += [row.status.record, row.explanation.nearest, *(row.status.intervals or ())]
    return {record.dag_id for record in records if record is not None}


def _verdict(row: TaskStatus) -> Explanation | None:
    """What ``explain`` says of a row without reading anything more; None when it is
    the nearest earlier output that explains it."""
    if row.intervals:
        return Explanation(
            row.task, row.output_id, Verdict.PER_INTERVAL, intervals=len(row.intervals)
        )
    if row.intervals is None and row.stale:
        return Explanation(row.task, row.output_id, Verdict.STALE, row.record, stale=row.stale)
    if row.intervals is None and row.state == "done":
        return Explanation(row.task, row.output_id, Verdict.UP_TO_DATE)
    return None


@dataclass(frozen=True)
class Attempt:
    """One task instance, as the database knows it."""

    state: str | None
    try_number: int
    end: Any  # datetime or None
    cleared: bool | None  # it was cleared; None: re-run, cleared or retried (``was_cleared``)
    interval: tuple[Any, Any] | None  # the run's data interval (datetimes)


def was_cleared(earlier: Sequence[str | None], try_number: int) -> bool | None:
    """Whether a task instance was cleared, from the states its earlier tries ended in
    (Airflow's task instance history): a try that ended up for retry was retried, one
    that ended otherwise (success, skipped, failed) was cleared. None when it was re-run
    but its history does not say how."""
    if any(state != "up_for_retry" for state in earlier):
        return True
    if earlier or try_number <= 1:
        return False
    return None


@dataclass(frozen=True)
class InstanceFacts:
    task: str
    output_id: str  # this run's output of the task
    record: SuccessRecord | None  # what made it skip, or what it committed
    location: str
    current: SuccessRecord | None  # the output's current generation's record, if other
    #: The output ID the DAG's file gives the task now, when it is not the run's.
    file_now: str | None = None


def instance_facts(
    pipeline: Pipeline,
    store: OutputStore,
    task: str,
    run_id: str,
    dag_id: str,
    attempt: Attempt,
    run_output: str | None = None,
) -> InstanceFacts:
    """The record behind a task instance. Computed: the generation this run committed.
    Skipped: the generation that was current when it was skipped, the newest one
    committed before the instance ended (a later rebuild does not change what it found).
    ``run_output``: the task's file output ID in the DAG version the run ran (its outlet
    asset), which the file gives no more after a change; None to take the file's.
    """
    output_id = run_output_id(pipeline, task, attempt.interval, run_output)
    now = run_output_id(pipeline, task, attempt.interval) if task in pipeline.tasks else None
    history = [found.record for found in store.history(output_id) if found.record is not None]
    current = history[-1] if history else None
    record = None
    if attempt.state == "success":
        record = _last(r for r in history if r.run_id == run_id and r.dag_id == dag_id)
    elif attempt.state == "skipped":
        ended = attempt.end
        record = _last(r for r in history if ended is None or _when(r.end) <= ended)
    location = store.shown(store.data_of(record)) if record else ""
    file_now = now if now != output_id else None
    return InstanceFacts(task, output_id, record, location, current, file_now)


def instance_dags(found: InstanceFacts) -> set[str]:
    """The DAGs whose records an instance's page names."""
    return {record.dag_id for record in (found.record, found.current) if record is not None}


def run_output_id(
    pipeline: Pipeline, task: str, interval: tuple[Any, Any] | None, file_id: str | None = None
) -> str:
    """The output ID ``task`` has in a run of data ``interval`` (datetimes), as the
    run's tasks compute it (``RunInfo``): its file ID (``file_id``, else the pipeline's)
    unless it is partitioned."""
    stamps = None if interval is None or None in interval else tuple(map(timestamp, interval))
    run = RunInfo("", stamps, frozenset())
    known = task in pipeline.tasks
    file_id = file_id or pipeline[task].output
    return run.output_id(task, file_id, known and task in partitioned(pipeline))


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _last(records: Iterable[SuccessRecord]) -> SuccessRecord | None:
    found = list(records)
    return found[-1] if found else None


#: The most ancestors an output's page re-hashes for ``?verify=1``: beyond it, verifying
#: is a job for ``alamode lineage --verify``, not for a request to the api-server.
VERIFY_LIMIT = 50


class Hidden(LookupError):
    """No output the user may read: absent and unreadable alike (no existence oracle)."""


@dataclass(frozen=True)
class OutputLineage:
    tree: Any  # history.LineageNode
    nodes: Sequence[Any]  # its distinct nodes, the output first
    readable: frozenset[str]  # the DAGs of ``nodes`` the user may read
    verified: bool
    refused: str = ""  # why ``verify`` was not done


def output_lineage(
    store: OutputStore,
    output_id: str,
    generation: int | None,
    verify: bool,
    may_read: Callable[[str], bool],
) -> OutputLineage:
    """An output's lineage for a user who may read the DAGs ``may_read`` accepts. The
    output's own record is read first and its DAG authorized before anything more is
    read; verification (a download and re-hash of every ancestor) comes last, and only
    for at most ``VERIFY_LIMIT`` ancestors."""
    from alamode_airflow.history import lineage

    found = store.lookup(output_id) if generation is None else store.read(output_id, generation)
    if found.record is None or not may_read(found.record.dag_id):
        raise Hidden(f"no output {output_id} that you may read")
    tree = lineage(store, output_id, False, generation)
    nodes = ancestors(tree)
    refused = ""
    if verify and len(nodes) > VERIFY_LIMIT:
        refused = (
            f"verify re-hashes at most {VERIFY_LIMIT} outputs here and this lineage has"
            f" {len(nodes)}: run `alamode lineage --verify {output_id}` instead"
        )
    elif verify:
        tree = lineage(store, output_id, True, generation)
        nodes = ancestors(tree)
    dags = {node.record.dag_id for node in nodes if node.record is not None}
    readable = frozenset(d for d in dags if may_read(d))
    return OutputLineage(tree, nodes, readable, verify and not refused, refused)


def ancestors(tree: Any) -> Sequence[Any]:
    """The distinct nodes of a lineage tree, the output first."""
    from alamode_airflow.history import occurrences

    return [o.node for o in occurrences(tree) if not o.repeated]
