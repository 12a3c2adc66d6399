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
re-checked under its exclusive lock just before it moves (still not pinned nor needed
by a pin, no record newer than the cut-off, every record readable), since tasks and
users act between the listing and the deletion; an output whose lock is held (a task
producing or reading it) is left alone. Leftovers of dead attempts, old quarantined
generations and lock files of vanished outputs are reclaimed too (``gc_leftovers``).

Object-store roots are refused: gc renames and deletes folders, which an object store
has not; expire released claims and unwanted objects there with the bucket's
lifecycle rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from a_la_mode import AlamodeError, load
from alamode_airflow import gc_leftovers
from alamode_airflow.gc_leftovers import Leftover, Unknown, as_output_id, discard
from alamode_airflow.loader import find_files
from alamode_airflow.store import OutputStore, check_output_id


@dataclass(frozen=True)
class Candidate:
    output_id: str
    task: str | None
    newest: datetime | None  # newest record's end; None for a folder with no generation
    size: int


@dataclass(frozen=True)
class Entry:
    """One output folder as its records describe it (all generations together)."""

    output_id: str
    task: str | None = None
    newest: datetime | None = None
    inputs: frozenset[str] = frozenset()
    file_ids: frozenset[str] = frozenset()  # file IDs of a partitioned output
    unknown: str = ""  # why some generation cannot be read; empty when all can


@dataclass
class Plan:
    """What one gc found: the reclaimable outputs and leftovers, what it keeps without
    knowing, and what ``collect`` needs to re-check each output under its lock."""

    reclaimable: list[Candidate]
    unknown: list[Unknown]
    leftovers: list[Leftover]
    cutoff: datetime
    roots: frozenset[str]
    pins: frozenset[str]
    kept: set[str]
    index: dict[str, Entry] = field(repr=False)


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
    folder = local_root(store) / "pins"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return {name for name in names if as_output_id(name)}


def pin(store: OutputStore, output_id: str) -> None:
    check_output_id(output_id)
    folder = local_root(store) / "pins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / output_id).touch()


def unpin(store: OutputStore, output_id: str) -> bool:
    check_output_id(output_id)
    path = local_root(store) / "pins" / output_id
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def read_entry(store: OutputStore, output_id: str) -> Entry:
    """What every generation's record of one output says."""
    unknown, inputs, file_ids, ends, task = [], set(), set(), [], None
    for found in store.history(output_id):
        record = found.record
        if record is None:
            unknown.append(found.reason)
            inputs.update(_loose_inputs(store, output_id, found.generation))
            continue
        try:
            end = datetime.fromisoformat(record.end)
        except ValueError:
            unknown.append(f"generation {record.generation}: unreadable end {record.end!r}")
            continue
        # Records name their input IDs; partitions name their task's file ID too.
        inputs.update(record.inputs.values())
        file_ids.update([record.file_output_id] if record.file_output_id else [])
        ends.append(end if end.tzinfo else end.replace(tzinfo=UTC))
        task = record.task
    newest = max(ends, default=None)
    return Entry(
        output_id, task, newest, frozenset(inputs), frozenset(file_ids), "; ".join(unknown)
    )


def _loose_inputs(store: OutputStore, output_id: str, generation: int | None) -> set[str]:
    """Every output ID under ``inputs`` of a record this version cannot read, if it is
    JSON at all: a newer format most likely still names its inputs there."""
    path = Path(store.object_dir(output_id, generation).path) / "record.json"
    try:
        todo = [json.loads(path.read_text()).get("inputs")]
    except (OSError, ValueError, AttributeError):
        return set()
    found = set()
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
        elif isinstance(value, str) and as_output_id(value):
            found.add(value)
    return found


def survey(store: OutputStore) -> tuple[dict[str, Entry], list[Unknown]]:
    """One pass over ``objects/``: every output folder's entry, and the names there
    that are not output folders (kept, and reported)."""
    objects = local_root(store) / "objects"
    index: dict[str, Entry] = {}
    strays: list[Unknown] = []
    for path in sorted(objects.iterdir()) if objects.is_dir() else ():
        where = f"objects/{path.name}"
        if as_output_id(path.name) is None:
            strays.append(Unknown(where, "not an output ID"))
            continue
        if not path.is_dir() or path.is_symlink():
            strays.append(Unknown(where, "not a folder"))
            continue
        index[path.name] = entry = read_entry(store, path.name)
        if entry.unknown:
            strays.append(Unknown(where, entry.unknown, entry.task))
    return index, strays


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


def plan(store: OutputStore, root_ids: Iterable[str], older_than: timedelta) -> Plan:
    """Everything neither kept nor produced more recently than ``older_than`` ago."""
    cutoff = datetime.now(UTC) - older_than
    root_ids, pinned = frozenset(root_ids), frozenset(pins(store))
    index, unknown = survey(store)
    seeds = set(root_ids | pinned)
    for entry in index.values():
        # A partition is kept with its task's file ID, whether in a file or pinned.
        if entry.file_ids & seeds or entry.unknown or _newer(entry, cutoff):
            seeds.add(entry.output_id)
    kept = closure(seeds, lambda oid: index[oid].inputs if oid in index else ())
    objects = local_root(store) / "objects"
    reclaimable = [
        Candidate(oid, index[oid].task, index[oid].newest, gc_leftovers.size(objects / oid))
        for oid in consumers_first(index, [oid for oid in index if oid not in kept])
    ]
    leftovers, odd = gc_leftovers.find(local_root(store), cutoff)
    return Plan(reclaimable, unknown + odd, leftovers, cutoff, root_ids, pinned, kept, index)


def candidates(store: OutputStore, keep: Iterable[str], older_than: timedelta) -> list[Candidate]:
    """The reclaimable outputs when ``keep`` are the roots (see ``plan``)."""
    return plan(store, keep, older_than).reclaimable


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


def collect(
    store: OutputStore, chosen: Plan, advance: Callable[[], None] = lambda: None
) -> Outcome:
    """Delete the plan's reclaimable outputs and leftovers, re-checking each under its
    lock first; ``advance`` is called once per output."""
    root, outcome = local_root(store), Outcome()
    for candidate in chosen.reclaimable:
        output_id = candidate.output_id
        with store.try_locked(output_id) as free:
            why = _why_keep_now(store, chosen, output_id) if free else "in use"
            if why:
                # What stays keeps its inputs, which come later in the plan's order.
                inputs = chosen.index[output_id].inputs if output_id in chosen.index else ()
                chosen.kept = closure(inputs, lambda o: _inputs(store, chosen, o), chosen.kept)
            if why == "in use":
                outcome.busy.append(output_id)
            elif why:
                outcome.spared.append((output_id, why))
            else:
                # The one step that matters: records and data leave objects/ together.
                discard(root, root / "objects" / output_id, output_id)
                # Lock files are unlinked only by a holder of their exclusive flock, and
                # store.locked re-opens a lock file whose path no longer names the inode
                # it locked: a task waiting on this one takes a fresh file.
                (root / "locks" / f"{output_id}.lock").unlink(missing_ok=True)
                outcome.deleted.append(output_id)
        advance()
    outcome.leftovers = gc_leftovers.reclaim(root, chosen.leftovers)
    return outcome


def _why_keep_now(store: OutputStore, chosen: Plan, output_id: str) -> str:
    """Why an output listed as reclaimable must stay after all, read under its lock
    (empty when it may go): pins and commits may have come since the listing."""
    pinned = frozenset(pins(store))
    if pinned != chosen.pins:
        # Closing over only the new pins is enough: what was kept stays kept.
        chosen.kept = closure(
            pinned - chosen.pins, lambda o: _inputs(store, chosen, o), chosen.kept
        )
        chosen.pins = pinned
    if output_id in chosen.kept:
        return "pinned since the listing, or an input of an output kept"
    entry = read_entry(store, output_id)
    if entry.unknown:
        return entry.unknown
    if _newer(entry, chosen.cutoff):
        return "a record newer than the cut-off since the listing"
    if entry.file_ids & (chosen.roots | chosen.pins):
        return "a partition of a task in the dags folder or pinned"
    return ""


def _inputs(store: OutputStore, chosen: Plan, output_id: str) -> frozenset[str]:
    """An output's input IDs, from the index or, for one committed since, its records."""
    if output_id not in chosen.index:
        chosen.index[output_id] = read_entry(store, output_id)
    return chosen.index[output_id].inputs


def _newer(entry: Entry, cutoff: datetime) -> bool:
    return entry.newest is not None and entry.newest > cutoff


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
    """The root folder; gc renames and deletes folders, which an object store has not."""
    if not store.local:
        raise AlamodeError(
            f"gc works on local storage roots; {store.root} is an object store "
            "(expire its objects and released claims with the bucket's lifecycle rules)"
        )
    return Path(store.root.path)
