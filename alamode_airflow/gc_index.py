"""The index garbage collection decides from: one pass over every record in ``objects/``.

Each output folder becomes an ``Entry``: the input IDs its records name (all
generations together; a record this version cannot read still gives the output IDs
under its ``inputs``, since a newer format most likely keeps them there), the file IDs
of a partitioned output, its newest record's end, and why any generation cannot be
read. Closures and the order of deletion are computed on this index, not by walking
the store once per root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alamode_airflow.gc_leftovers import Unknown, as_output_id
from alamode_airflow.store import OutputStore


@dataclass(frozen=True)
class Entry:
    """One output folder as its records describe it (all generations together)."""

    output_id: str
    task: str | None = None
    newest: datetime | None = None
    inputs: frozenset[str] = frozenset()
    file_ids: frozenset[str] = frozenset()  # file IDs of a partitioned output
    unknown: str = ""  # why some generation cannot be read; empty when all can


def read_entry(store: OutputStore, output_id: str) -> Entry:
    """What every generation's record of one output says."""
    try:
        history = store.history(output_id)
    except OSError as exc:  # a record that is a folder, or one we may not read
        return Entry(output_id, unknown=f"cannot read its records: {exc}")
    unknown, inputs, file_ids, ends, task = [], set(), set(), [], None
    for found in history:
        record = found.record
        if record is None:
            unknown.append(found.reason)
            inputs.update(output_ids_in(_raw_inputs(store, output_id, found.generation)))
            continue
        try:
            end = datetime.fromisoformat(record.end)
        except (TypeError, ValueError):
            unknown.append(f"generation {record.generation}: unreadable end {record.end!r}")
            continue
        # Records name their input IDs; partitions name their task's file ID too.
        inputs.update(output_ids_in(record.inputs))
        file_ids.update(output_ids_in(record.file_output_id))
        ends.append(end if end.tzinfo else end.replace(tzinfo=UTC))
        task = record.task
    newest = max(ends, default=None)
    return Entry(
        output_id, task, newest, frozenset(inputs), frozenset(file_ids), "; ".join(unknown)
    )


def output_ids_in(value: Any) -> set[str]:
    """Every output ID in a JSON value: ``inputs`` maps names to IDs today, and may map
    them to an ID with a generation tomorrow; either way no input is missed."""
    found, todo = set(), [value]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, list | tuple):
            todo.extend(value)
        elif isinstance(value, str) and as_output_id(value):
            found.add(value)
    return found


def _raw_inputs(store: OutputStore, output_id: str, generation: int | None) -> Any:
    """``inputs`` of a record this version cannot read, if it is JSON at all: a newer
    format most likely still names its inputs there."""
    path = Path(store.object_dir(output_id, generation).path) / "record.json"
    try:
        return json.loads(path.read_text()).get("inputs")
    except (OSError, ValueError, AttributeError):
        return None


def survey(
    store: OutputStore, objects: Path
) -> tuple[dict[str, Entry], list[Unknown], dict[str, int]]:
    """One pass over ``objects/``: every output folder's entry, the names there that
    are not output folders (kept, and reported), and the folders holding tombstones
    only (what gc took before) with their mtimes: a build into one of them adds a
    generation without changing ``objects/``, so it is watched by its own mtime."""
    index: dict[str, Entry] = {}
    strays: list[Unknown] = []
    retired: dict[str, int] = {}
    for path in sorted(objects.iterdir()) if objects.is_dir() else ():
        where = f"objects/{path.name}"
        if as_output_id(path.name) is None:
            strays.append(Unknown(where, "not an output ID"))
            continue
        if not path.is_dir() or path.is_symlink():
            strays.append(Unknown(where, "not a folder"))
            continue
        if not any(child.name.isdigit() for child in path.iterdir()):
            retired[path.name] = path.stat().st_mtime_ns  # nothing left to take
            continue
        index[path.name] = entry = read_entry(store, path.name)
        if entry.unknown:
            strays.append(Unknown(where, entry.unknown, entry.task))
    return index, strays, retired


def closure(
    seeds: Iterable[str], inputs_of: Callable[[str], Iterable[str]], kept: Iterable[str] = ()
) -> set[str]:
    """``kept`` plus the seeds and every output they name as inputs, recursively
    (what is in ``kept`` already is taken as closed)."""
    result, todo = set(kept), list(seeds)
    while todo:
        output_id = todo.pop()
        if output_id not in result:
            result.add(output_id)
            todo.extend(inputs_of(output_id))
    return result


def wanted(entry: Entry, named: frozenset[str], cutoff: datetime) -> bool:
    """Whether an output is a seed besides the IDs ``named`` by files and pins: a
    partition of one of them (records name the task's file ID), one with a record newer
    than the cut-off, or one gc cannot read."""
    return bool(entry.file_ids & named or entry.unknown or newer(entry, cutoff))


def changed_at(objects: Path) -> tuple[int, int]:
    """When ``objects/`` last changed, and its link count: a new output folder changes
    both (the count on file systems that count subfolders, as ext4, xfs and tmpfs do,
    which catches two changes within one tick of the clock)."""
    try:
        info = os.stat(objects)
    except FileNotFoundError:
        return (0, 0)
    return info.st_mtime_ns, info.st_nlink


def consumers_first(index: dict[str, Entry], chosen: list[str]) -> list[str]:
    """``chosen`` ordered so that an output comes before every output it reads (records
    name inputs by content, so there is no cycle)."""
    wanted, order, done = set(chosen), [], set()
    for start in chosen:
        if start in done:
            continue
        stack = [(start, iter(sorted(index[start].inputs & wanted)))]
        done.add(start)
        while stack:
            output_id, pending = stack[-1]
            child = next((c for c in pending if c not in done), None)
            if child is None:
                order.append(output_id)  # after every input it reads
                stack.pop()
            else:
                done.add(child)
                stack.append((child, iter(sorted(index[child].inputs & wanted))))
    return order[::-1]


def newer(entry: Entry, cutoff: datetime) -> bool:
    return entry.newest is not None and entry.newest > cutoff
