"""Which outputs each task of each DAG produced: an index ``alamode`` keeps from the
store's success records, so a question about one task (``alamode explain``) reads that
task's records and not the whole store.

The index is derived data, kept at ``index/tasks.json`` in the store: the output IDs it
has read the records of (``seen``), and per DAG and task the output IDs whose records
name them. Each use refreshes it: one listing of ``objects/``, then the records of the
outputs it has not seen (every generation of each), and outputs no longer listed (gc
took them) are dropped. So the first use on a store reads every record once, and later
ones only what was committed since. Records are immutable, so what it has read stays
true; it may lag in one way: a new generation of an output it has already seen, written
by another DAG (a shared output rebuilt elsewhere), is not listed under that DAG.

Anyone may rebuild it: it is rewritten whole (atomically on a local root, one object on
an object store), and deleting it only costs the next use a full read. A store that
cannot be written (read-only credentials) is answered from a fresh index each time.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import time
from pathlib import Path

from alamode_airflow.listing import child_names
from alamode_airflow.store import OutputStore, is_output_id

INDEX = ("index", "tasks.json")
FORMAT = 2


class TaskIndex:
    """Output IDs by (dag_id, task), refreshed from the store's records. Kept as it is
    stored, newline-joined IDs per task, and split only for the task asked or changed:
    a use of the index pays for one task's list, not for every task's."""

    def __init__(
        self, seen: str = "", tasks: dict[str, str] | None = None, stamp: int | None = None
    ) -> None:
        self._seen = seen
        self.tasks: dict[str, str] = dict(tasks or {})
        # A local root: the mtime of ``objects/`` when it was listed, so an unchanged
        # folder needs no listing (an output committed or removed changes it).
        self.stamp = stamp

    @functools.cached_property
    def seen(self) -> set[str]:
        """The outputs whose records were read (split only when a refresh needs it)."""
        return set(self._seen.split("\n")) - {""}

    @staticmethod
    def key(dag_id: str, task: str) -> str:
        return f"{dag_id}\t{task}"  # neither Airflow id can hold a tab

    def outputs(self, task: str, dag_id: str | None = None) -> set[str]:
        """The outputs recorded for ``task`` of ``dag_id`` (of any DAG when None)."""
        keys = (
            [self.key(dag_id, task)]
            if dag_id is not None
            else [k for k in self.tasks if k.partition("\t")[2] == task]
        )
        return {oid for key in keys for oid in self.tasks.get(key, "").split("\n") if oid}

    def refresh(self, store: OutputStore) -> bool:
        """Read the records of the outputs committed since, drop those gone; whether
        anything changed."""
        stamp = _stamp(store)
        if stamp is not None and stamp == self.stamp:
            return False
        present = set(_output_ids(store))
        gone, new = self.seen - present, present - self.seen
        new = {name for name in new if is_output_id(name)}
        if gone:
            self.seen -= gone
            for key, joined in list(self.tasks.items()):
                self._set(key, {oid for oid in joined.split("\n") if oid not in gone})
        added: dict[str, set[str]] = {}
        for output_id in sorted(new):
            records = [found.record for found in store.history(output_id) if found.record]
            # Not seen until a record is readable: one being committed is read next time.
            if records:
                self.seen.add(output_id)
            for record in records:
                added.setdefault(self.key(record.dag_id, record.task), set()).add(output_id)
        for key, outputs in added.items():
            self._set(key, outputs | set(self.tasks.get(key, "").split("\n")))
        # Kept only once it is a second old: the mtime's clock ticks every few ms, and a
        # commit in the tick of the listing would not move it ("racy git").
        before, self.stamp = self.stamp, stamp
        if stamp is not None and time.time_ns() - stamp < 1_000_000_000:
            self.stamp = None
        return bool(gone or new) or self.stamp != before

    def _set(self, key: str, outputs: set[str]) -> None:
        joined = "\n".join(sorted(outputs - {""}))
        if joined:
            self.tasks[key] = joined
        else:
            self.tasks.pop(key, None)

    def to_json(self) -> dict:
        seen = "\n".join(self.seen)  # unsorted: sorting 100k IDs costs more than the rest
        return {"format": FORMAT, "seen": seen, "tasks": self.tasks, "stamp": self.stamp}


def task_index(store: OutputStore) -> TaskIndex:
    """The store's index, refreshed, and written back when it changed."""
    index = _load(store)
    if index.refresh(store):
        with contextlib.suppress(OSError):
            _save(store, index)
    return index


def _load(store: OutputStore) -> TaskIndex:
    try:
        body = json.loads(store.root.joinpath(*INDEX).read_text())
        if body.get("format") != FORMAT:
            return TaskIndex()  # another version's: rebuilt from the records
        return TaskIndex(body["seen"], body["tasks"], body.get("stamp"))
    except FileNotFoundError:
        return TaskIndex()
    except (ValueError, KeyError, TypeError, AttributeError):
        return TaskIndex()  # damaged (a disk error, a hand edit): rebuilt from the records


def _save(store: OutputStore, index: TaskIndex) -> None:
    text = json.dumps(index.to_json(), separators=(",", ":"))
    path = store.root.joinpath(*INDEX)
    if not store.local:
        path.write_text(text)  # one object: readers see the old one or this one
        return
    folder = Path(path.path).parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as file:
        file.write(text)
    os.replace(file.name, folder / INDEX[-1])


def _stamp(store: OutputStore) -> int | None:
    """The mtime of a local root's ``objects/`` (None on an object store: no folders)."""
    if not store.local:
        return None
    try:
        return os.stat(store.root.joinpath("objects").path).st_mtime_ns
    except FileNotFoundError:
        return None


def _output_ids(store: OutputStore) -> list[str]:
    """The output IDs under ``objects/``: one listing (a local one without a path
    object per name, which costs more than the listing itself at 100k outputs)."""
    objects = store.root / "objects"
    if store.local:
        try:
            names = os.listdir(objects.path)
        except FileNotFoundError:
            names = []
    else:
        names = child_names(objects)
    return names  # what is not an output ID is left out when it is new
