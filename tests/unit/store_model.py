"""A small model of the store, and the store-side steps the stateful test drives.

The model knows, for each task of a fixed pipeline, every generation the store should
hold, the bytes committed as it, and *which commit of each input it was made from*
(the commit itself, not its generation number). It decides currency by that identity:
an output is current while each input's current commit is the very one it read. The
store decides by generation numbers; the two agree only if a generation number, once
named by a record, never comes to mean other bytes.

Each commit's record ends at a tick of a model clock (an hour a commit, from 2020), so
gc's cut-off can fall between any two commits.
"""

from __future__ import annotations

import base64
import contextlib
import tempfile
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from a_la_mode import Dag, load
from alamode_airflow import gc
from alamode_airflow.currency import assess
from alamode_airflow.manifests import manifest, remove, verify
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import Committed, Found, Lookup, OutputStore


def diamond():
    """a -> b, a -> c, (b, c) -> d, and an unrelated e."""
    dag = Dag({"dag_id": "model"})
    for name in "abcde":
        dag.task(name, {"command": f"make {name}"})
    dag.a >> [dag.b, dag.c] >> dag.d
    return load(dag.bencode())


PIPELINE = diamond()
TASKS = PIPELINE.order
OUTPUTS = {task.name: task.output for task in PIPELINE}
INPUTS = {task.name: tuple(task.inputs) for task in PIPELINE}
TASK_OF = {oid: name for name, oid in OUTPUTS.items()}
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def at(tick: float) -> datetime:
    """The time of the model clock's ``tick``."""
    return EPOCH + timedelta(hours=tick)


def dags_folder(folder: Path, names) -> Path:
    """A dags folder whose one encoded file holds ``names`` and everything they read
    (the same tasks, so the same output IDs, as the pipeline's); empty for no names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kept.alamode").unlink(missing_ok=True)
    if names:
        dag = Dag({"dag_id": "kept"})
        chosen = [name for name in TASKS if name in ancestors(names)]
        for name in chosen:
            dag.task(name, {"command": f"make {name}"})
        for name in chosen:
            for input_name in INPUTS[name]:
                getattr(dag, input_name) >> getattr(dag, name)
        (folder / "kept.alamode").write_bytes(dag.bencode())
    return folder


def ancestors(names) -> set[str]:
    """``names`` and everything they read, directly or not."""
    found, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name not in found:
            found.add(name)
            stack.extend(INPUTS[name])
    return found


@dataclass(eq=False)
class Commit:
    """One committed (output, generation): its files and the input commits it read."""

    task: str
    generation: int
    files: dict[str, bytes]
    reads: dict[str, Commit]
    tick: int = 0  # its record's end, on the model clock


@dataclass
class Model:
    """What the store should hold."""

    # task -> generation -> commit, for every generation the store should still hold
    held: dict[str, dict[int, Commit]] = field(default_factory=lambda: {t: {} for t in TASKS})
    current: dict[str, Commit | None] = field(default_factory=lambda: dict.fromkeys(TASKS))
    # The generation the next producer writes: one past the newest ever committed (or
    # lost), even once gc reclaimed the whole output (it leaves a tombstone).
    next_generation: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASKS, 0))
    clock: int = 0  # the tick of the next commit

    def is_current(self, task: str) -> bool:
        commit = self.current[task]
        return commit is not None and all(
            self.is_current(name) and commit.reads[name] is self.current[name]
            for name in INPUTS[task]
        )

    def inputs_current(self, task: str) -> bool:
        return all(self.is_current(name) for name in INPUTS[task])

    def committed(self, commit: Commit) -> None:
        self.held[commit.task][commit.generation] = commit
        self.current[commit.task] = commit
        self.next_generation[commit.task] = commit.generation + 1
        self.clock = max(self.clock, commit.tick + 1)

    def recent(self, last: int) -> set[str]:
        """Tasks holding one of the ``last`` commits (the newest ``last`` ticks)."""
        return {
            task
            for task, held in self.held.items()
            if any(c.tick >= self.clock - last for c in held.values())
        }

    def lost(self, task: str) -> None:
        """The current generation's data vanished and a reader moved it aside."""
        del self.held[task][self.current[task].generation]
        self.current[task] = None

    def collected(self, task: str) -> None:
        """gc reclaimed the whole output: nothing of it is left but the tombstone of its
        newest generation, so the next build is the one after it."""
        self.held[task], self.current[task] = {}, None


# --- the store side ------------------------------------------------------------------------


def unexpected(message, *args):
    raise AssertionError("a producer found damage nobody made: " + message % args)


class Killed(Exception):
    """gc's process was killed here."""


def record(store, staging: Path, name: str, generation: int, reads, end=None) -> SuccessRecord:
    """The record the engine writes for an attempt at ``generation`` of task ``name``
    that read ``reads`` (input name -> the input's lookup), ending now or at ``end``."""
    task = PIPELINE[name]
    now = end or datetime.now(UTC).isoformat()
    return SuccessRecord(
        output_id=task.output,
        dag_id="model",
        task=name,
        run_id=f"run-{uuid.uuid4().hex[:8]}",
        try_number=1,
        start=now,
        end=now,
        duration_s=0.0,
        command=task.spec["command"],
        image=None,
        sha=None,
        inputs={n: found.record.output_id for n, found in reads.items()},
        input_generations={n: found.generation for n, found in reads.items()},
        input_digests={n: found.record.digest for n, found in reads.items()},
        data_path=store.data_path(staging),
        preimage_b64=base64.b64encode(task.preimage()).decode(),
        host="model",
        manifest=manifest(staging / "data"),
        generation=generation,
        rebuilt=generation > 0,
    )


def write(folder: Path, files: Mapping[str, bytes]) -> None:
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)


def commit(store, staging: Path, name: str, found: Lookup, reads, files, end=None):
    """Finish an attempt staged in ``staging``: write ``files``, commit the next
    generation after ``found``; it must win (nobody else produces here)."""
    write(staging / "data", files)
    made = record(store, staging, name, found.next_generation, reads, end)
    outcome = store.commit(staging, made)
    assert outcome is Committed.COMMITTED, f"{name} generation {made.generation}: {outcome}"
    return made


def dead_upload(store: OutputStore, name: str, generation: int, data: bytes) -> None:
    """What a worker killed mid-upload leaves on an object store: part of its files
    under its own attempt prefix of the generation it was writing, and no record."""
    attempt = uuid.uuid4().hex[:16]
    key = store.object_dir(OUTPUTS[name], generation) / attempt / "data" / "partial.bin"
    key.write_bytes(data)


def lose(store: OutputStore, name: str) -> int:
    """Delete the current generation's data (a disk error, someone's ``rm``); returns
    the generation lost."""
    found = store.lookup(OUTPUTS[name])
    assert found.done, found
    data = store.object_dir(OUTPUTS[name], found.generation) / found.record.data_path
    if store.local:
        remove(data.path)  # committed folders are read-only
    else:
        data.fs.rm(data.path, recursive=True)
        data.fs.invalidate_cache()
    return found.generation


def contents(store: OutputStore, found: Lookup, scratch: Path) -> tuple[dict[str, bytes], list]:
    """The files of a DONE generation as a command would read them, and the problems
    ``verify`` finds against its manifest."""
    into = scratch / uuid.uuid4().hex
    folder = store.fetch(found.record, into)
    files = {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    return files, verify(folder, found.record.manifest)


@dataclass
class Seen:
    """One look at everything the store holds for the pipeline."""

    lookups: dict[str, Lookup]
    # task -> generation -> (its readable lookup, its files, verify's problems)
    generations: dict[str, dict[int, tuple[Lookup, dict[str, bytes], list]]]


def look(store: OutputStore) -> Seen:
    """Every output, at once on an object store (where each look is a few round trips;
    on a local root threads only add their overhead)."""

    def one(oid: str, scratch: Path):
        lookup, generations = store.lookup(oid), {}
        for found in store.history(oid):
            if found.status is Found.DONE:
                files, problems = contents(store, found, scratch)
                generations[found.generation] = (found, files, problems)
        return lookup, generations

    with (
        tempfile.TemporaryDirectory(prefix="alamode-model-") as scratch,
        ThreadPoolExecutor(1 if store.local else len(OUTPUTS)) as pool,
    ):
        each = map if store.local else pool.map
        looks = list(each(lambda oid: one(oid, Path(scratch)), OUTPUTS.values()))
    return Seen(
        {name: lookup for name, (lookup, _) in zip(TASKS, looks, strict=True)},
        {name: held for name, (_, held) in zip(TASKS, looks, strict=True)},
    )


@dataclass
class Live:
    """An attempt in progress: it holds its output's lock and its inputs' shared
    locks, and has written part of its output."""

    name: str
    locks: contextlib.ExitStack
    staging: Path
    found: Lookup
    reads: dict[str, Lookup]
    files: dict[str, bytes]


def staged_partially(store: OutputStore, name: str, files: Mapping[str, bytes]) -> Path:
    staging = store.stage(OUTPUTS[name])
    write(staging / "data", dict(list(files.items())[:1]))  # the first file only, so far
    return staging


def check_provenance(seen: Seen, model: Model) -> None:
    """What ``currency.assess`` calls current is what the model calls current, and read
    each input's current generation; and every record's inputs, while the store holds
    the generation it names, are the very bytes the output was made from."""
    verdicts = assess(OUTPUTS, INPUTS, lambda ids: {oid: seen.lookups[TASK_OF[oid]] for oid in ids})
    current = {name for name, verdict in verdicts.items() if verdict.current}
    assert current == {name for name in TASKS if model.is_current(name)}
    for name in current:
        record = verdicts[name].found.record
        for input_name in INPUTS[name]:
            now = seen.lookups[input_name]
            assert now.done, (name, input_name, now)
            assert record.read_generation(input_name) == now.generation, (name, input_name)
    # Every record, current or not: the input generation it names, while the store
    # holds it, is the very bytes the output was made from.
    for name, generations in seen.generations.items():
        for generation, (found, _files, _problems) in generations.items():
            commit = model.held[name][generation]
            for input_name, oid in found.record.inputs.items():
                assert oid == OUTPUTS[input_name]
                named = seen.generations[input_name].get(found.record.read_generation(input_name))
                if named is not None:
                    assert named[1] == commit.reads[input_name].files, (name, input_name)


# --- garbage collection -------------------------------------------------------------------


def holding(store: OutputStore) -> dict[str, list[int]]:
    """Output ID -> generations, for each output of the pipeline holding one (a folder
    of tombstones alone is an output gc reclaimed)."""
    return {oid: found for oid in OUTPUTS.values() if (found := store.generations(oid))}


def named_by(store: OutputStore, output_id: str) -> set[str]:
    """The outputs any generation's record of ``output_id`` names as inputs."""
    return {
        input_id
        for lookup in store.history(output_id)
        if lookup.record is not None
        for input_id in lookup.record.inputs.values()
    }


def closure(store: OutputStore, outputs) -> set[str]:
    """``outputs`` and every output a record of theirs names, recursively: what must be
    kept so each kept record's inputs stay."""
    found, stack = set(), list(outputs)
    while stack:
        oid = stack.pop()
        if oid not in found:
            found.add(oid)
            stack.extend(named_by(store, oid))
    return found


def older_than(clock: int, last: int | None) -> timedelta:
    """The ``--older-than`` whose cut-off falls just before the ``last`` commits of the
    model clock (all commits are older than a cut-off of now when ``last`` is None)."""
    if last is None:
        return timedelta(0)
    return datetime.now(UTC) - at(clock - last - 0.5)


def killed(chosen: gc.Plan, stop_after: int | None) -> gc.Plan:
    """The plan as far as a gc killed after ``stop_after`` outputs gets through it (it
    never reaches the leftovers, which come last)."""
    if stop_after is None:
        return chosen
    return replace(chosen, reclaimable=chosen.reclaimable[:stop_after], leftovers=[])


def check_collected(store: OutputStore, before, kept: set[str], whole: bool) -> set[str]:
    """What gc may have done, given what ``holding`` said ``before`` it and what it had to
    keep; returns the outputs it took. It took nothing kept, nor anything a record it
    left names; and unless killed (not ``whole``) it took everything else."""
    after = holding(store)
    for oid in kept & set(before):
        assert after.get(oid) == before[oid], f"gc removed {TASK_OF[oid]}"
    for oid in after:
        taken = named_by(store, oid) & (set(before) - set(after))
        assert not taken, f"gc took {[TASK_OF[t] for t in taken]}, named by {TASK_OF[oid]}"
    if whole:
        assert set(after) <= kept, [TASK_OF[oid] for oid in set(after) - kept]
    return set(before) - set(after)


# --- the examples --------------------------------------------------------------------------


def make(store: OutputStore, name: str, data: bytes, end: str | None = None):
    """Run task ``name`` once, as the engine does (its inputs must be current)."""
    found = store.settle(OUTPUTS[name], unexpected)
    reads = {n: store.lookup(OUTPUTS[n]) for n in INPUTS[name]}
    staging = store.stage(OUTPUTS[name])
    return commit(store, staging, name, found, reads, {"out.bin": data}, end)


def made_from_old_a(store: OutputStore) -> None:
    """Make a long ago, and b from it now."""
    make(store, "a", b"old a", end=at(0).isoformat())
    make(store, "b", b"made from old a")


def current(store: OutputStore) -> set[str]:
    """The tasks ``currency.assess`` calls current."""
    return {name for name, v in assess(OUTPUTS, INPUTS, store.lookup_all).items() if v.current}
