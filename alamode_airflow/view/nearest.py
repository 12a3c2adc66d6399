"""``explain``'s nearest earlier output for each changed task of a DAG page, bounded:
the newest ``LIMIT`` records of each task (by their markers' times, from the one
listing of the task's folder that is made anyway), read in one pool for all the tasks
together, never a pool per task (a page of 50 changed tasks would start 50 pools of 32
threads), and one worker on a local root, where a read waits on no round trip.

``alamode explain`` compares with every earlier record of the task; on a page a task
changed 1,000 times would read 1,000 records per view, so the page compares with the
newest ``LIMIT`` and says how many it left out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from a_la_mode import Pipeline
from a_la_mode.diff import compare
from a_la_mode.values import thaw
from alamode_airflow.history import Explanation, Verdict, preimage_parts
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import LOOKUP_WORKERS, OutputStore, look_up_all
from alamode_airflow.task_index import MARKER, TASKS, folder_name, marker_record

#: The most earlier records of one task a page compares with.
LIMIT = 20


def explain_all(
    pipeline: Pipeline, names: list[str], store: OutputStore, dag_id: str, note: str
) -> dict[str, Explanation]:
    """For each task in ``names`` (none has a current output): compared with the one of
    its newest ``LIMIT`` earlier outputs in ``dag_id`` that differs in the fewest places."""
    workers = 1 if store.local else LOOKUP_WORKERS
    listed = look_up_all(lambda name: _newest(store, name, dag_id), names, workers)
    wanted = sorted({marker for markers, _ in listed.values() for marker in markers})
    records = look_up_all(lambda marker: marker_record(store, marker), wanted, workers)
    explained = {}
    for name in names:
        markers, total = listed[name]
        found = [records[m] for m in markers]
        mine = [r for r in found if r and r.task == name and r.dag_id == dag_id]
        explained[name] = _nearest(pipeline, name, mine, total - len(markers), note)
    return explained  # type: ignore[return-value]


def _newest(store: OutputStore, task: str, dag_id: str) -> tuple[list[str], int]:
    """The task's newest ``LIMIT`` markers in ``dag_id``, and how many it has."""
    folder = store.root / TASKS / folder_name(task) / folder_name(dag_id)
    fs = folder.fs
    if not store.local:
        fs.invalidate_cache(folder.path)  # other workers write there
    try:
        entries = fs.ls(folder.path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return [], 0
    named = []
    for entry in entries:
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if MARKER.fullmatch(name):
            named.append((_mtime(entry), name))
    named.sort(reverse=True)
    return [name for _, name in named[:LIMIT]], len(named)


def _mtime(entry: dict[str, Any]) -> float:
    when = entry.get("LastModified", entry.get("mtime", 0))
    return when.timestamp() if isinstance(when, datetime) else float(when or 0)


def _nearest(
    pipeline: Pipeline, name: str, candidates: list[SuccessRecord], left_out: int, note: str
) -> Explanation:
    task = pipeline[name]
    if not candidates:
        return Explanation(name, task.output, Verdict.NEVER_BUILT, note=note)
    current = (thaw(task.spec), dict(task.inputs), task.output)
    candidates.sort(key=lambda record: record.end, reverse=True)
    changes = [(compare(name, (*preimage_parts(r), r.preimage_id), current), r) for r in candidates]
    change, record = min(changes, key=lambda pair: _differences(pair[0]))
    more = f"compared with its newest {LIMIT} records of {LIMIT + left_out}" if left_out else ""
    return Explanation(name, task.output, Verdict.CHANGED, record, change, note=more)


def _differences(change) -> int:
    parts = (change.spec_changes, change.upstream_changed, change.inputs_added)
    return sum(len(part) for part in (*parts, change.inputs_removed))
