"""A small model of the store, and the store-side steps the stateful test drives.

The model knows, for each task of a fixed pipeline, every generation the store should
hold, the bytes committed as it, and *which commit of each input it was made from*
(the commit itself, not its generation number). It decides currency by that identity:
an output is current while each input's current commit is the very one it read. The
store decides by generation numbers; the two agree only if a generation number, once
named by a record, never comes to mean other bytes.
"""

from __future__ import annotations

import base64
import contextlib
import tempfile
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from a_la_mode import Dag, load
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


@dataclass
class Model:
    """What the store should hold."""

    # task -> generation -> commit, for every generation the store should still hold
    held: dict[str, dict[int, Commit]] = field(default_factory=lambda: {t: {} for t in TASKS})
    current: dict[str, Commit | None] = field(default_factory=lambda: dict.fromkeys(TASKS))
    # The generation the next producer writes: one past the newest ever committed (or
    # lost); 0 again only once gc reclaimed the whole output.
    next_generation: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASKS, 0))

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

    def lost(self, task: str) -> None:
        """The current generation's data vanished and a reader moved it aside."""
        del self.held[task][self.current[task].generation]
        self.current[task] = None

    def collected(self, task: str) -> None:
        """gc reclaimed the whole output: nothing of it is left."""
        self.held[task], self.current[task], self.next_generation[task] = {}, None, 0


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
    """Every output at once (on an object store each look is a few round trips)."""

    def one(oid: str, scratch: Path):
        lookup, generations = store.lookup(oid), {}
        for found in store.history(oid):
            if found.status is Found.DONE:
                files, problems = contents(store, found, scratch)
                generations[found.generation] = (found, files, problems)
        return lookup, generations

    with (
        tempfile.TemporaryDirectory(prefix="alamode-model-") as scratch,
        ThreadPoolExecutor(len(OUTPUTS)) as pool,
    ):
        looks = list(pool.map(lambda oid: one(oid, Path(scratch)), OUTPUTS.values()))
    return Seen(
        {name: lookup for name, (lookup, _) in zip(TASKS, looks, strict=True)},
        {name: held for name, (_, held) in zip(TASKS, looks, strict=True)},
    )


def closure(store: OutputStore, outputs) -> set[str]:
    """``outputs`` and every output a record of theirs names, recursively (every
    generation's record): what must be kept so each kept record's inputs stay."""
    found, stack = set(), list(outputs)
    while stack:
        oid = stack.pop()
        if oid in found:
            continue
        found.add(oid)
        for lookup in store.history(oid):
            if lookup.record is not None:
                stack.extend(lookup.record.inputs.values())
    return found


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


# --- the examples of what gc gets wrong ----------------------------------------------------


def make(store: OutputStore, name: str, data: bytes, end: str | None = None):
    """Run task ``name`` once, as the engine does (its inputs must be current)."""
    found = store.settle(OUTPUTS[name], unexpected)
    reads = {n: store.lookup(OUTPUTS[n]) for n in INPUTS[name]}
    staging = store.stage(OUTPUTS[name])
    return commit(store, staging, name, found, reads, {"out.bin": data}, end)


def made_from_old_a(store: OutputStore) -> None:
    """Make a, and b from it."""
    make(store, "a", b"old a", end="2020-01-01T00:00:00+00:00")
    make(store, "b", b"made from old a")


def remade_a_leaves_b_stale(store: OutputStore) -> None:
    """a was reclaimed while b stayed: made again with other bytes, a must not count as
    what b was made from, or the engine skips b and serves what the old a made."""
    assert store.lookup(OUTPUTS["b"]).done
    assert store.lookup(OUTPUTS["a"]).status is Found.MISSING
    make(store, "a", b"new a")
    verdicts = assess(OUTPUTS, INPUTS, store.lookup)
    assert verdicts["a"].current
    assert store.lookup(OUTPUTS["b"]).record.read_generation("a") == 0
    assert not verdicts["b"].current, "b counts as made from the new a"
