"""Which outputs each task of each DAG produced: a marker written when an output is
committed, so a question about one task (``alamode explain``) reads that task's
records and never the whole store.

Layout under the storage root::

    tasks/<task>/<dag id>/<output id>.<generation>   an empty marker per record

``OutputStore.commit`` writes a record's marker once the record is committed, or found
committed by another attempt (the record is there; the marker may be one that attempt
did not live to write). ``task_records`` lists one task's folder (one request per
1000 markers on an object store, never a listing of ``objects/``) and reads the record
of each marker by the generation it names (one GET each, many at once). The task
comes first so that a task of any DAG (no ``dag_id``) is one folder's folders.

Names. Airflow's ids are letters, digits, ``_``, ``-`` and ``.`` (a task group's tasks
are ``group.task``); a DAG's id may also be a file's name. A name of 1 to 100 of those
characters that starts with neither ``.`` nor ``-`` is kept as it is, so no folder is
``.`` or ``..`` and every one is short enough for any disk; any other name is written
``-`` and 40 hex digits of its SHA-256 (no kept name starts with ``-``, so the two never
meet). Names may still share a folder (a case-insensitive disk folds ``Sales`` into
``sales``): a marker is a hint, and a record counts for the DAG and task it names.

Markers that name nothing. A marker whose record is gone (gc took the output, a
lifecycle rule expired it, it was quarantined), cannot be read, or names another DAG
or task is skipped: readers believe records, not markers. gc removes the markers of
the outputs it takes; ``alamode index`` removes the ones left otherwise.

Stores with outputs committed before markers existed (or by a worker killed between a
record and its marker): ``alamode index`` (``rebuild``) reads every record once and
writes the markers that are missing. Run it once on such a store; until then explain
compares with what was committed since, and, while the store has no markers at all,
says so. It may run while tasks commit: the markers are listed before the records are
read, so a marker written meanwhile is never taken for one that names nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from alamode_airflow._compat import ObjectStoragePath
from alamode_airflow.listing import child_names
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import LOOKUP_WORKERS, OutputStore, is_output_id, look_up_all

TASKS = "tasks"
_KEPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
MARKER = re.compile(r"([0-9a-f]{64})\.([0-9]+)")
#: What ``explain`` says of a store whose outputs have no markers at all.
UNINDEXED = (
    "this store has no task index: its outputs were committed by an earlier version; "
    "run `alamode index` once to find them"
)


def folder_name(name: str) -> str:
    """A DAG's or a task's id as a folder name safe on every disk and object store.

    >>> folder_name("group.clean"), folder_name("../x")[:9]
    ('group.clean', '-d6b96a97')
    """
    if _KEPT.fullmatch(name):
        return name
    return "-" + hashlib.sha256(name.encode()).hexdigest()[:40]


def marker(record: SuccessRecord) -> str:
    """The marker of ``record``, relative to the storage root."""
    folder = f"{TASKS}/{folder_name(record.task)}/{folder_name(record.dag_id)}"
    return f"{folder}/{record.output_id}.{record.generation}"


def task_records(store: OutputStore, task: str, dag_id: str | None = None) -> list[SuccessRecord]:
    """The records of ``task`` of ``dag_id`` (of any DAG when None), from its markers."""
    folder = store.root / TASKS / folder_name(task)
    folders = [folder / folder_name(dag_id)] if dag_id is not None else _folders(folder)
    markers = [name for f in folders for name in child_names(f) if MARKER.fullmatch(name)]

    def read(name: str) -> SuccessRecord | None:
        record = marker_record(store, name)
        if record and record.task == task and dag_id in (None, record.dag_id):
            return record
        return None

    workers = 1 if store.local else LOOKUP_WORKERS  # a local read waits on no round trip
    found = look_up_all(read, sorted(markers), workers)  # type: ignore[arg-type]
    return [record for record in found.values() if record is not None]


def _folders(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    """The DAG folders under a task's folder (a task of any DAG)."""
    return [folder / name for name in child_names(folder)]


def marker_record(store: OutputStore, name: str) -> SuccessRecord | None:
    """The record a marker names; None when it is gone or cannot be read."""
    output_id, generation = name.split(".")
    try:
        record = SuccessRecord.loads(store.backend.read_record(output_id, int(generation)))
    except FileNotFoundError:  # gc took it, a lifecycle rule expired it, quarantined
        return None
    except (ValueError, KeyError, TypeError):  # damaged, or of a newer format
        return None
    if (record.output_id, record.generation) != (output_id, int(generation)):
        return None
    return record


def unindexed(store: OutputStore) -> bool:
    """Whether the store holds outputs and no marker at all (one listing of the root):
    it was filled before markers, and ``alamode index`` has not run on it."""
    names = set(child_names(store.root))
    return "objects" in names and TASKS not in names


@dataclass(frozen=True)
class Rebuilt:
    records: int  # readable records found
    written: int  # markers that were missing
    removed: int  # markers that named nothing


def rebuild(store: OutputStore) -> Rebuilt:
    """Every record's marker written where missing, and markers that name nothing
    removed: one pass over the whole store (on an object store, pages of keys and a
    read per record, many requests at once)."""
    before = _all_markers(store)  # first: a marker written after this names a record seen
    expected: set[str] = set()
    unreadable: set[tuple[str, int | None]] = set()

    outputs = [name for name in child_names(store.root / "objects") if is_output_id(name)]
    # Their folders listed together (pages of objects/ on an object store), not one each.
    listed = store.backend.listings(outputs)

    def history(output_id: str) -> None:
        for found in store.history(output_id, listed.get(output_id)):
            if found.record is not None:
                expected.add(marker(found.record))
            else:  # a newer format, damage, an attempt: its markers are left alone
                unreadable.add((output_id, found.generation))

    workers = 1 if store.local else LOOKUP_WORKERS
    look_up_all(history, outputs, workers)  # type: ignore[arg-type]
    missing = sorted(expected - before)
    look_up_all(store.backend.mark, missing, workers)  # type: ignore[arg-type]
    stray = [key for key in sorted(before - expected) if _names(key) not in unreadable]
    removed = look_up_all(lambda key: _remove(store, key), stray, workers)  # type: ignore
    return Rebuilt(len(expected), len(missing), sum(removed.values()))


def _names(key: str) -> tuple[str, int]:
    """The output and generation a marker names."""
    output_id, _, generation = key.rpartition("/")[2].partition(".")
    return output_id, int(generation)


def _all_markers(store: OutputStore) -> set[str]:
    """Every marker, relative to the root (one listing per 1000 on an object store)."""
    top = store.root / TASKS
    if store.local:
        base = Path(top.path)
        found = (
            Path(folder, name).relative_to(base.parent).as_posix()
            for folder, _, names in os.walk(base)
            for name in names
        )
    else:
        top.fs.invalidate_cache(top.path)
        prefix = store.root.path.rstrip("/") + "/"
        found = (key.removeprefix(prefix) for key in top.fs.find(top.path))
    return {key for key in found if key.count("/") == 3 and MARKER.fullmatch(key.split("/")[3])}


def _remove(store: OutputStore, relative: str) -> int:
    """Delete one marker; 1 if it was there."""
    try:
        (store.root / relative).unlink()
    except FileNotFoundError:
        return 0
    return 1


def unmark(store: OutputStore, markers: list[str]) -> None:
    """Delete ``markers`` (gc, after taking their outputs away)."""
    for relative in markers:
        _remove(store, relative)
