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
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from alamode_airflow.listing import child_names
from alamode_airflow.store import OutputStore, is_output_id

INDEX = ("index", "tasks.json")
FORMAT = 1


class TaskIndex:
    """Output IDs by (dag_id, task), refreshed from the store's records."""

    def __init__(self, seen: Iterable[str] = (), tasks: dict[str, list[str]] | None = None):
        self.seen = set(seen)
        self.tasks: dict[str, set[str]] = {key: set(v) for key, v in (tasks or {}).items()}

    @staticmethod
    def key(dag_id: str, task: str) -> str:
        return json.dumps([dag_id, task])

    def outputs(self, task: str, dag_id: str | None = None) -> set[str]:
        """The outputs recorded for ``task`` of ``dag_id`` (of any DAG when None)."""
        if dag_id is not None:
            return set(self.tasks.get(self.key(dag_id, task), ()))
        found: set[str] = set()
        for key, outputs in self.tasks.items():
            if json.loads(key)[1] == task:
                found |= outputs
        return found

    def refresh(self, store: OutputStore) -> bool:
        """Read the records of the outputs committed since, drop those gone; whether
        anything changed."""
        present = set(_output_ids(store))
        gone, new = self.seen - present, present - self.seen
        for outputs in self.tasks.values():
            outputs -= gone
        self.seen -= gone
        for output_id in sorted(new):
            records = [found.record for found in store.history(output_id) if found.record]
            # Not seen until a record is readable: one being committed is read next time.
            if records:
                self.seen.add(output_id)
            for record in records:
                self.tasks.setdefault(self.key(record.dag_id, record.task), set()).add(output_id)
        return bool(gone or new)

    def to_json(self) -> dict:
        tasks = {key: sorted(outputs) for key, outputs in sorted(self.tasks.items()) if outputs}
        return {"format": FORMAT, "seen": sorted(self.seen), "tasks": tasks}


def task_index(store: OutputStore) -> TaskIndex:
    """The store's index, refreshed, and written back when it changed."""
    index = _load(store)
    if index.refresh(store):
        with contextlib.suppress(OSError, PermissionError):
            _save(store, index)
    return index


def _load(store: OutputStore) -> TaskIndex:
    try:
        body = json.loads(store.root.joinpath(*INDEX).read_text())
        if body.get("format") != FORMAT:
            return TaskIndex()  # another version's: rebuilt from the records
        return TaskIndex(body["seen"], body["tasks"])
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
    return [name for name in names if is_output_id(name)]
