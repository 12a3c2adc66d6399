"""The index garbage collection decides from: one pass over every record in ``objects/``.

Each output folder becomes an ``Entry``: the input IDs its records name (all
generations together; a record this version cannot read still gives the output IDs
under its ``inputs``, since a newer format most likely keeps them there), the file IDs
of a partitioned output, its newest record's end, and why any generation cannot be
read. Closures and the order of deletion are computed on this index, not by walking
the store once per root.

On an object store, where each request is a round trip, the pass is one listing of
``objects/``'s folders (a request per thousand outputs), then the keys of every folder in
pages of ``objects/`` (``ObjectBackend.listings``: hundreds of outputs a page), then a
read per record (the listing also gives each reclaimable output's size; an output
listed alone gets one listing more for it), many outputs at once
(``store.look_up_all``): a bounded number of requests per output, whatever the store's
size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alamode_airflow.gc_leftovers import Unknown, as_output_id, size
from alamode_airflow.store import LOOKUP_WORKERS, Listing, OutputStore, look_up_all

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One output folder as its records describe it (all generations together)."""

    output_id: str
    task: str | None = None
    newest: datetime | None = None
    inputs: frozenset[str] = frozenset()
    file_ids: frozenset[str] = frozenset()  # file IDs of a partitioned output
    unknown: str = ""  # why some generation cannot be read; empty when all can
    size: int | None = None  # bytes under its folder, when its listing said (object stores)


def read_entry(store: OutputStore, output_id: str) -> Entry:
    """What every generation's record of one output says."""
    return _surveyed(store, output_id) or Entry(output_id)


def stamped(
    store: OutputStore, output_id: str, listing: Listing | None = None
) -> tuple[Entry | None, tuple[int, int]]:
    """An output's entry, or None when its folder holds no generation (tombstones only,
    or a commit that made the folder and has not moved its generation in yet), with the
    folder's ``changed_at`` read first: a commit into it after the read changes that."""
    stamp = _stamp(store, output_id)
    return _surveyed(store, output_id, listing), stamp


def _surveyed(store: OutputStore, output_id: str, listing: Listing | None = None) -> Entry | None:
    """``read_entry``, or None when the output has no generation left (tombstones
    only: what gc took before). On an object store: one read per record, after one
    listing of the output's folder unless ``listing`` is that folder listed already."""
    try:
        history = store.history(output_id, listing)
    except OSError as exc:  # a record that is a folder, or one we may not read
        return Entry(output_id, unknown=f"cannot read its records: {exc}")
    if not history:
        return None
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
    size = listing.size if listing is not None else None
    return Entry(
        output_id, task, newest, frozenset(inputs), frozenset(file_ids), "; ".join(unknown), size
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
    try:
        return json.loads(store.backend.read_record(output_id, generation)).get("inputs")
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def survey(
    store: OutputStore,
) -> tuple[dict[str, Entry], list[Unknown], dict[str, tuple[int, int]]]:
    """One pass over ``objects/``: every output folder's entry, the names there that
    are not output folders (kept, and reported), and the folders holding tombstones
    only (what gc took before) with their ``changed_at`` on a local root: a build into
    one of them adds a generation without changing ``objects/``, so it is watched by its
    own. On an object store: one listing of ``objects/``'s folders per thousand
    outputs, then their keys in pages of ``objects/`` (``backend.listings``), then the
    records, many at once (``look_up_all``)."""
    strays: list[Unknown] = []
    folders: list[str] = []
    for name, folder in object_names(store):
        where = f"objects/{name}"
        if as_output_id(name) is None:
            strays.append(Unknown(where, "not an output ID"))
        elif not folder:
            strays.append(Unknown(where, "not a folder"))
        else:
            folders.append(name)
    index: dict[str, Entry] = {}
    retired: dict[str, tuple[int, int]] = {}
    listed = store.backend.listings(folders)  # on an object store: pages of objects/

    def surveyed(output_id: str) -> tuple[Entry | None, tuple[int, int]]:
        return stamped(store, output_id, listed.get(output_id))

    for name, (entry, stamp) in _each(store, surveyed, folders).items():
        if entry is None:  # nothing left to take
            retired[name] = stamp
            continue
        index[name] = entry
        if entry.unknown:
            strays.append(Unknown(f"objects/{name}", entry.unknown, entry.task))
    return index, strays, retired


def object_names(store: OutputStore) -> list[tuple[str, bool]]:
    """(name, whether it is a folder) of everything in ``objects/``, sorted; a
    symbolic link is not a folder. Nothing when there is no ``objects/`` yet."""
    objects = store.root / "objects"
    if store.local:
        try:
            with os.scandir(objects.path) as entries:
                return sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
        except (FileNotFoundError, NotADirectoryError):
            return []
    fs = objects.fs
    fs.invalidate_cache(objects.path)  # other workers write there; fsspec caches listings
    try:
        found = fs.ls(objects.path, detail=True)
    except FileNotFoundError:
        return []
    named = ((item["name"].rstrip("/").rsplit("/", 1)[-1], item["type"]) for item in found)
    return sorted((name, kind == "directory") for name, kind in named)


def sizes(store: OutputStore, entries: list[Entry]) -> dict[str, int]:
    """Bytes under each output's folder: what the survey's listing said where it did,
    else, on an object store, one listing of its keys each, many at once."""
    known = {e.output_id: e.size for e in entries if e.size is not None}
    output_ids = [e.output_id for e in entries if e.size is None]
    if store.local:
        return {oid: size(Path(store.object_dir(oid).path)) for oid in output_ids}

    def listed(output_id: str) -> int:
        folder = store.object_dir(output_id)
        try:
            return int(folder.fs.du(folder.path))
        except FileNotFoundError:  # taken meanwhile
            return 0

    return known | _each(store, listed, output_ids)


def _each(store: OutputStore, work: Callable[[str], T], output_ids: list[str]) -> dict[str, T]:
    """``work`` of each output ID: on an object store many at once, since each waits
    on round trips; on a local root one after another (file system calls are quick,
    and threads would only contend for the interpreter)."""
    workers = 1 if store.local else LOOKUP_WORKERS
    return look_up_all(work, output_ids, workers)  # type: ignore[arg-type, return-value]


def _stamp(store: OutputStore, output_id: str) -> tuple[int, int]:
    """An output folder's ``changed_at`` on a local root ((0, 0) on an object store,
    which gc never deletes from, so never watches)."""
    if not store.local:
        return (0, 0)
    return changed_at(Path(store.object_dir(output_id).path))


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


def changed_at(folder: Path) -> tuple[int, int]:
    """When a folder (``objects/``, an output's) last changed, and its link count: a new
    subfolder (an output folder, a generation) changes both (the count on file systems
    that count subfolders, as ext4, xfs and tmpfs do, which catches two changes within
    one tick of the clock); (0, 0) for none."""
    try:
        info = os.stat(folder)
    except FileNotFoundError:  # gone, or not yet made: anything made there is new
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
