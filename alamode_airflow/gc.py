"""Garbage collection: which outputs are still wanted, and reclaiming the rest safely.

What is kept. The seeds are every output the encoded files in the dags folder describe
(every partition and generation of them), every pinned output, every output with a
record newer than the cut-off, and every output gc cannot read (a record of a newer
format, a damaged one, a generation without one: unknown means keep, and it is
reported). What is kept is the seeds' closure, as a Nix GC root keeps its closure:
every output a kept output's records name in ``inputs``, recursively, so ``lineage`` of
a kept output finds all its inputs. The closure comes from one pass over every record
(an index output ID -> input IDs), not one walk per root. gc works on whole output
folders: a kept output keeps all its generations.

The dags folder must be Airflow's configured ``[core] dags_folder`` and hold encoded
files, unless the caller says otherwise (``any_folder``): an empty or mistyped folder
would make every output reclaimable.

Reclaiming moves an output's whole folder (data and records together) out of
``objects/`` with one rename into ``trash/`` before deleting it, so a gc stopped at any
point leaves no record without its data; the next gc empties ``trash/``. Each output is
re-checked under its exclusive lock just before it moves (still not pinned nor read by
an output pinned or committed since the listing, no record newer than the cut-off,
every record readable), since tasks and users act between the listing and the
deletion; an output whose lock is held (a task producing or reading it) is left alone,
and what stays keeps its inputs (outputs go consumers first, so their inputs are still
there to keep). Leftovers of dead attempts, old quarantined generations and lock files
of vanished outputs are reclaimed too (``gc_leftovers``). The index and closures are
in ``gc_index``.

On an object-store root gc lists (pins, roots, closure, sizes: the same plan), and
every walk there is a bounded number of requests per output, made many at once
(``gc_index.survey``); it deletes nothing there. An object store has no locks, and a
task reads an output without taking anything, so no check could keep an output a
task is reading; expire unwanted objects and released claims with the bucket's
lifecycle rules, and leftovers there too (uploads of dead attempts, which no record
names, and claims). A generation with data but no record, an attempt in progress or a
dead one, is something gc cannot read: its output is kept, and reported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from a_la_mode import AlamodeError, load
from alamode_airflow import gc_leftovers, task_index
from alamode_airflow.gc_index import (
    Entry,
    changed_at,
    closure,
    consumers_first,
    newer,
    read_entry,
    sizes,
    stamped,
    survey,
    wanted,
)
from alamode_airflow.gc_leftovers import Leftover, Unknown, as_output_id
from alamode_airflow.listing import child_names
from alamode_airflow.loader import find_files
from alamode_airflow.manifests import remove
from alamode_airflow.store import OutputStore, check_output_id


@dataclass(frozen=True)
class Candidate:
    output_id: str
    task: str | None
    newest: datetime | None  # newest record's end; None for a folder with no generation
    size: int


IN_USE = "in use"


@dataclass
class Plan:
    """What one gc found: the reclaimable outputs (consumers before their inputs) and
    leftovers, what it keeps without being able to read it, and what ``collect`` needs
    to re-check each output under its lock (which it updates as it learns of pins and
    outputs that came since)."""

    reclaimable: list[Candidate]
    unknown: list[Unknown]
    leftovers: list[Leftover]
    cutoff: datetime
    roots: frozenset[str]
    pins: frozenset[str]
    kept: set[str]
    index: dict[str, Entry] = field(repr=False)
    stamp: tuple[int, int] = (0, 0)  # objects/ as last seen (see gc_index.changed_at)
    # Output folders with no generation, as last seen: tombstones only (a build there
    # is a new output too), or a commit not yet done: watched until a record comes.
    retired: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)


@dataclass
class Outcome:
    deleted: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # lock held: in use
    spared: list[tuple[str, str]] = field(default_factory=list)  # (output ID, why)
    leftovers: list[Leftover] = field(default_factory=list)  # reclaimed


def roots(dags_folder: str | Path, *, any_folder: bool = False) -> set[str]:
    """Output IDs (file IDs) of every task in every encoded file under the folder; a
    file that cannot be read stops gc, since its roots would be unknown. The folder
    must be Airflow's dags folder and hold encoded files unless ``any_folder``."""
    folder = Path(dags_folder)
    files = find_files(folder)
    if not any_folder:
        _check_dags_folder(folder, files)
    found: set[str] = set()
    for path in files:
        try:
            pipeline = load(path)
        except AlamodeError as exc:
            message = f"cannot tell what it needs, so nothing is collected: {exc}"
            raise AlamodeError(message) from exc
        found.update(task.output for task in pipeline)
    return found


def _check_dags_folder(folder: Path, files: list[Path]) -> None:
    from alamode_airflow._compat import conf

    override = "; pass --any-dags-folder if that is what you mean"
    if not folder.is_dir():
        raise AlamodeError(
            "is not a folder, so every output would be reclaimable" + override, file=str(folder)
        )
    if not files:
        reason = "holds no encoded files (*.alamode), so every output would be reclaimable"
        raise AlamodeError(reason + override, file=str(folder))
    configured = Path(conf.get("core", "dags_folder")).expanduser()
    if folder.resolve() != configured.resolve():
        reason = (
            f"is not Airflow's dags folder ({configured}), so the outputs of the files "
            "Airflow runs would be reclaimable"
        )
        raise AlamodeError(reason + override, file=str(folder))


def pins(store: OutputStore) -> set[str]:
    """The pinned output IDs (other names in ``pins/`` pin nothing)."""
    return {name for name in child_names(store.root / "pins") if as_output_id(name)}


def pin(store: OutputStore, output_id: str) -> None:
    store.backend.mark(f"pins/{check_output_id(output_id)}")


def unpin(store: OutputStore, output_id: str) -> bool:
    path = store.root / "pins" / check_output_id(output_id)
    existed = path.exists()
    with contextlib.suppress(FileNotFoundError):  # another unpin came first
        path.unlink()
    return existed


def plan(store: OutputStore, root_ids: Iterable[str], older_than: timedelta) -> Plan:
    """Everything neither kept nor produced more recently than ``older_than`` ago. On
    an object store: a listing of ``pins/`` and of ``objects/`` (a request per
    thousand names), then each output's listing and record reads, and each
    reclaimable output's size, many at once; no leftovers (see the module's notes)."""
    cutoff = datetime.now(UTC) - older_than
    root_ids, pinned = frozenset(root_ids), frozenset(pins(store))
    # Before the listing: what comes after it is seen as new.
    seen = changed_at(local_root(store) / "objects") if store.local else (0, 0)
    index, unknown, retired = survey(store)
    seeds = set(root_ids | pinned)
    seeds.update(e.output_id for e in index.values() if wanted(e, root_ids | pinned, cutoff))
    kept = closure(seeds, lambda oid: index[oid].inputs if oid in index else ())
    order = consumers_first(index, [oid for oid in index if oid not in kept])
    size = sizes(store, [index[oid] for oid in order])
    reclaimable = [Candidate(o, index[o].task, index[o].newest, size[o]) for o in order]
    leftovers, odd = gc_leftovers.find(local_root(store), cutoff) if store.local else ([], [])
    found = (reclaimable, unknown + odd, leftovers, cutoff, root_ids, pinned, kept, index)
    return Plan(*found, stamp=seen, retired=retired)


def candidates(store: OutputStore, keep: Iterable[str], older_than: timedelta) -> list[Candidate]:
    """The reclaimable outputs when ``keep`` are the roots (see ``plan``)."""
    return plan(store, keep, older_than).reclaimable


def collect(
    store: OutputStore, chosen: Plan, advance: Callable[[], None] = lambda: None
) -> Outcome:
    """Delete the plan's reclaimable outputs and leftovers, re-checking each under its
    lock first; ``advance`` is called once per output."""
    root, outcome = local_root(store), Outcome()
    trashed: list[Path] = []
    for candidate in chosen.reclaimable:
        output_id = candidate.output_id
        with store.try_locked(output_id) as free:
            why = _why_keep_now(store, chosen, output_id) if free else IN_USE
            if why:
                # What stays keeps its inputs, which come later in the plan's order.
                inputs = chosen.index[output_id].inputs if output_id in chosen.index else ()
                chosen.kept = closure(inputs, lambda o: _inputs(store, chosen, o), chosen.kept)
            if why == IN_USE:
                outcome.busy.append(output_id)
            elif why:
                outcome.spared.append((output_id, why))
            elif taken := _take(store, chosen, output_id):
                trashed += taken
                # Lock files are unlinked only by a holder of their exclusive flock, and
                # store.locked re-opens a lock file whose path no longer names the inode
                # it locked: a task waiting on this one takes a fresh file.
                (root / "locks" / f"{output_id}.lock").unlink(missing_ok=True)
                outcome.deleted.append(output_id)
        advance()
    # Deleting takes long; it happens after every check, so no output committed
    # meanwhile goes unseen (an interrupted gc leaves trash/ for the next one).
    for trash in trashed:
        remove(trash)
    outcome.leftovers = gc_leftovers.reclaim(root, chosen.leftovers)
    return outcome


def _take(store: OutputStore, chosen: Plan, output_id: str) -> list[Path]:
    """Move an output's generations out of ``objects/`` (one rename each: a record and
    its data together), after leaving a tombstone of its newest generation: built
    again, the output never reuses a generation number for other bytes, even when gc
    is killed half way (what is left behind the tombstone is never current, and the
    next gc takes it). ``objects/`` itself does not change: the output's folder stays
    with its tombstone, watched for a build again. The output's task markers
    (``task_index``) go with it."""
    newest = store.newest_generation(output_id)
    if newest is None:
        return []
    folder = local_root(store) / "objects" / output_id
    gc_leftovers.writable(folder)
    # Read before the records move; removed after, so a gc killed between the two
    # leaves markers that name nothing (skipped by explain), never a record unmarked.
    markers = [task_index.marker(f.record) for f in store.history(output_id) if f.record]
    store.retire(output_id, newest)
    taken = []
    for generation in store.generations(output_id):
        name = f"{output_id}.{generation}"
        trash = gc_leftovers.to_trash(local_root(store), folder / str(generation), name)
        taken += [trash] if trash is not None else []
    task_index.unmark(store, markers)
    chosen.retired[output_id] = changed_at(folder)
    return taken


def _why_keep_now(store: OutputStore, chosen: Plan, output_id: str) -> str:
    """Why an output listed as reclaimable must stay after all, read under its lock
    (empty when it may go): pins and commits may have come since the listing."""
    _catch_up(store, chosen)
    if output_id in chosen.kept:
        return "pinned since the listing, or an input of an output kept"
    entry = read_entry(store, output_id)
    if entry.unknown:
        return entry.unknown
    if newer(entry, chosen.cutoff):
        return "a record newer than the cut-off since the listing"
    if entry.file_ids & (chosen.roots | chosen.pins):
        return "a partition of a task in the dags folder or pinned"
    return ""


def _catch_up(store: OutputStore, chosen: Plan) -> None:
    """Take in the pins made and the outputs committed since the listing: each is a
    seed as it would have been then, and keeps its closure. Closing over only the new
    seeds is enough: what was kept stays kept.

    A new output folder is watched as a folder of tombstones is: a commit makes the
    folder before it moves its generation in, so a folder seen empty is read again
    once it changes, never taken as an output with no records (which would keep
    nothing it reads)."""
    pinned = frozenset(pins(store))
    seeds = set(pinned - chosen.pins)
    chosen.pins = pinned
    objects = local_root(store) / "objects"
    seen = changed_at(objects)
    if seen != chosen.stamp:
        chosen.stamp = seen
        for name in os.listdir(objects):
            if name not in chosen.index and name not in chosen.retired and as_output_id(name):
                chosen.retired[name] = (0, 0)  # never seen: read below
    named = chosen.roots | pinned
    for name, stamp in list(chosen.retired.items()):
        if changed_at(objects / name) == stamp:
            continue
        entry, chosen.retired[name] = stamped(store, name)
        if entry is not None:  # committed or built again
            del chosen.retired[name]
            chosen.index[name] = entry
            seeds.update([name] if wanted(entry, named, chosen.cutoff) else [])
    if seeds:
        chosen.kept = closure(seeds, lambda o: _inputs(store, chosen, o), chosen.kept)


def _inputs(store: OutputStore, chosen: Plan, output_id: str) -> frozenset[str]:
    """An output's input IDs, from the index or, for one not in it, its records."""
    if output_id in chosen.index:
        return chosen.index[output_id].inputs
    return read_entry(store, output_id).inputs


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m`` or ``0``.

    >>> parse_age("2d")
    datetime.timedelta(days=2)
    """
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    if text == "0":
        return timedelta(0)
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise AlamodeError(f"--older-than must look like 30d, 12h, 15m or 0, not {text!r}")
    return timedelta(**{units[unit]: int(number)})


def local_root(store: OutputStore) -> Path:
    """The root folder; gc deletes only there (see the module's notes)."""
    if not store.local:
        raise AlamodeError(
            f"gc deletes on local storage roots only; {store.url} is an object store, "
            "which has no locks to keep an output a task is reading: a dry run lists "
            "what is reclaimable; expire those objects and released claims with the "
            "bucket's lifecycle rules"
        )
    return Path(store.root.path)
