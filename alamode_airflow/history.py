"""Questions about what the store holds, answered from its success records alone:
the status of a pipeline's outputs, why a task will run, and an output's lineage."""

from __future__ import annotations

import base64
import enum
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bencode

from a_la_mode import Pipeline
from a_la_mode.diff import TaskChange, compare
from a_la_mode.values import thaw
from alamode_airflow.listing import child_names
from alamode_airflow.records import SuccessRecord, manifest
from alamode_airflow.store import Found, OutputStore


@dataclass(frozen=True)
class TaskStatus:
    task: str
    output_id: str
    status: Found
    record: SuccessRecord | None
    location: str
    reason: str = ""
    generation: int | None = None


def status(pipeline: Pipeline, store: OutputStore) -> list[TaskStatus]:
    """Each task of ``pipeline``, in topological order: done or not, and by which run."""
    rows = []
    for task in pipeline:
        found = store.lookup(task.output)
        rows.append(
            TaskStatus(
                task.name,
                task.output,
                found.status,
                found.record,
                store.where(task.output, found.generation),
                found.reason,
                found.generation,
            )
        )
    return rows


def records(store: OutputStore) -> Iterator[SuccessRecord]:
    """Every readable success record in the store (unreadable ones are skipped)."""
    for name in sorted(child_names(store.root / "objects")):
        for found in store.history(name):
            if found.record is not None:
                yield found.record


class Verdict(enum.Enum):
    UP_TO_DATE = "up to date"
    NEVER_BUILT = "never built"  # no earlier output of this task in the store
    CHANGED = "changed"


@dataclass(frozen=True)
class Explanation:
    task: str
    output_id: str
    verdict: Verdict
    nearest: SuccessRecord | None = None
    change: TaskChange | None = None

    def reasons(self) -> list[str]:
        """One line per cause, for people and logs."""
        if self.change is None:
            return []
        change = self.change
        lines = [f"spec {c.key}: {c.old!r} -> {c.new!r}" for c in change.spec_changes]
        lines += [f"upstream {name} has a new output ID" for name in change.upstream_changed]
        lines += [f"now reads {name}" for name in change.inputs_added]
        lines += [f"no longer reads {name}" for name in change.inputs_removed]
        return lines


def preimage_parts(record: SuccessRecord) -> tuple[dict[str, Any], dict[str, str]]:
    """The spec and inputs a record's output ID was computed from."""
    body = thaw(bencode.decode(base64.b64decode(record.preimage_b64)))
    inputs = body.pop("inputs")
    return body, inputs


def explain(pipeline: Pipeline, name: str, store: OutputStore) -> Explanation:
    """Why task ``name`` will run (or not): compared with the nearest earlier output
    of the same task, the one whose preimage differs in the fewest places."""
    task = pipeline[name]
    if store.lookup(task.output).done:
        return Explanation(name, task.output, Verdict.UP_TO_DATE)
    candidates = [r for r in records(store) if r.task == name]
    if not candidates:
        return Explanation(name, task.output, Verdict.NEVER_BUILT)
    current = (thaw(task.spec), dict(task.inputs), task.output)
    # Most recent first, then a stable sort on the number of differences.
    candidates.sort(key=lambda record: record.end, reverse=True)
    changes = [(compare(name, (*preimage_parts(r), r.output_id), current), r) for r in candidates]
    change, record = min(changes, key=lambda pair: _size(pair[0]))
    return Explanation(name, task.output, Verdict.CHANGED, record, change)


def _size(change: TaskChange) -> int:
    return sum(
        len(part)
        for part in (
            change.spec_changes,
            change.upstream_changed,
            change.inputs_added,
            change.inputs_removed,
        )
    )


class Check(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    BAD_PREIMAGE = "preimage does not hash to the output ID"
    BAD_DATA = "data does not match the manifest"


@dataclass(frozen=True)
class LineageNode:
    output_id: str
    record: SuccessRecord | None
    check: Check | None = None
    problems: tuple[str, ...] = ()
    inputs: dict[str, LineageNode] = field(default_factory=dict)


def lineage(store: OutputStore, output_id: str, verify: bool = False) -> LineageNode:
    """The tree of records that produced ``output_id``, inputs first-level down."""
    found = store.lookup(output_id)
    if found.record is None:
        return LineageNode(output_id, None, Check.MISSING, (found.reason or "no record",))
    record = found.record
    check, problems = _verify(store, record) if verify else (None, ())
    inputs = {name: lineage(store, oid, verify) for name, oid in sorted(record.inputs.items())}
    return LineageNode(output_id, record, check, problems, inputs)


def _verify(store: OutputStore, record: SuccessRecord) -> tuple[Check, tuple[str, ...]]:
    preimage = base64.b64decode(record.preimage_b64)
    if hashlib.sha256(preimage).hexdigest() != record.output_id:
        return Check.BAD_PREIMAGE, ()
    with tempfile.TemporaryDirectory(prefix="alamode-verify-") as scratch:
        data = store.fetch(record.output_id, record.generation, Path(scratch) / "data")
        actual = {entry.path: entry.sha256 for entry in manifest(data)}
    expected = {entry.path: entry.sha256 for entry in record.manifest}
    problems = [
        f"{path}: missing" if path not in actual else f"{path}: sha256 differs"
        for path, digest in expected.items()
        if actual.get(path) != digest
    ]
    problems += [f"{path}: not in the manifest" for path in actual if path not in expected]
    return (Check.BAD_DATA if problems else Check.OK), tuple(problems)
