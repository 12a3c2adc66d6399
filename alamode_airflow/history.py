"""Questions about what the store holds, answered from its success records alone:
the status of a pipeline's outputs, why a task will run, and an output's lineage."""

from __future__ import annotations

import base64
import enum
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bencode

from a_la_mode import Pipeline
from a_la_mode.diff import TaskChange, compare
from a_la_mode.ids import id_of
from a_la_mode.partitions import partitioned
from a_la_mode.values import thaw
from alamode_airflow.currency import assess
from alamode_airflow.listing import child_names
from alamode_airflow.manifests import verify
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import Found, OutputStore
from alamode_airflow.task_index import UNINDEXED, task_records, unindexed


@dataclass(frozen=True)
class TaskStatus:
    task: str
    output_id: str
    status: Found
    record: SuccessRecord | None
    location: str
    reason: str = ""
    generation: int | None = None
    stale: str | None = None  # why a recorded output is out of date
    # A partitioned task: the records of its intervals that are done, oldest first.
    intervals: tuple[SuccessRecord, ...] | None = None

    @property
    def state(self) -> str:
        """One word for people: done, stale, missing, ..."""
        if self.intervals is not None:
            return "per interval" if self.intervals else "missing"
        return "stale" if self.stale else self.status.value


def status(pipeline: Pipeline, store: OutputStore) -> list[TaskStatus]:
    """Each task of ``pipeline``, in topological order: current, stale (and why) or
    missing, and by which run; the same verdicts as the plan task's."""
    per_interval = partitioned(pipeline)
    rows = [_intervals(store, task) for task in pipeline if task.name in per_interval]
    outputs = {task.name: task.output for task in pipeline if task.name not in per_interval}
    inputs = {task.name: list(task.inputs) for task in pipeline}
    for task, verdict in assess(outputs, inputs, store.lookup_all).items():
        found = verdict.found
        rows.append(
            TaskStatus(
                task,
                verdict.output_id,
                found.status,
                found.record,
                store.shown(store.located(verdict.output_id, found)),
                found.reason,
                found.generation,
                verdict.stale,
            )
        )
    order = {task.name: n for n, task in enumerate(pipeline)}
    return sorted(rows, key=lambda row: order[row.task])


def _intervals(store: OutputStore, task) -> TaskStatus:
    """A partitioned task's row: which intervals have a success (one lookup each)."""
    found = list(store.lookup_all(store.partitions(task.output)).values())
    done = sorted((f.record for f in found if f.done), key=lambda r: r.interval or ("", ""))
    where = store.shown(store.data_of(done[-1])) if done else "-"
    status_ = Found.DONE if done else Found.MISSING
    last = done[-1] if done else None
    return TaskStatus(task.name, task.output, status_, last, where, intervals=tuple(done))


def records(store: OutputStore) -> Iterator[SuccessRecord]:
    """Every readable success record in the store (unreadable ones are skipped)."""
    for name in sorted(child_names(store.root / "objects")):
        for found in store.history(name):
            if found.record is not None:
                yield found.record


class Verdict(enum.Enum):
    UP_TO_DATE = "up to date"
    STALE = "stale"  # recorded, but made from an input generation that was replaced
    PER_INTERVAL = "per interval"  # partitioned: recorded intervals skip, others run
    NEVER_BUILT = "never built"  # no earlier output of this task in the store
    CHANGED = "changed"


@dataclass(frozen=True)
class Explanation:
    task: str
    output_id: str
    verdict: Verdict
    nearest: SuccessRecord | None = None
    change: TaskChange | None = None
    stale: str | None = None
    intervals: int = 0  # partitioned: how many intervals are recorded
    note: str = ""  # what the answer may miss (a store without a task index)

    def reasons(self) -> list[str]:
        """One line per cause, for people and logs."""
        if self.stale is not None:
            return [self.stale]
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


def explain(
    pipeline: Pipeline, name: str, store: OutputStore, dag_id: str | None = None
) -> Explanation:
    """Why task ``name`` will run (or not): compared with the nearest earlier output
    of the same task of the same DAG (``dag_id``, else the pipeline's meta ``dag_id``;
    of any DAG when neither is known), the one whose preimage differs in the fewest
    places. Only that task's records are read, found by the markers ``task_index``
    keeps of them; the rest of the store is never listed."""
    task = pipeline[name]
    dag_id = dag_id or pipeline.meta.get("dag_id")
    if name in partitioned(pipeline):
        found = store.lookup_all(store.partitions(task.output))
        recorded = [oid for oid, lookup in found.items() if lookup.done]
        if recorded:
            return Explanation(name, task.output, Verdict.PER_INTERVAL, intervals=len(recorded))
        return _nearest(name, task, store, dag_id)
    verdict = _assess_upto(pipeline, name, store)
    if verdict.current:
        return Explanation(name, task.output, Verdict.UP_TO_DATE)
    if verdict.stale:
        record = verdict.found.record
        return Explanation(name, task.output, Verdict.STALE, record, stale=verdict.stale)
    return _nearest(name, task, store, dag_id)


def _nearest(name: str, task, store: OutputStore, dag_id: str | None) -> Explanation:
    candidates = task_records(store, name, dag_id)
    if not candidates:
        note = UNINDEXED if unindexed(store) else ""
        return Explanation(name, task.output, Verdict.NEVER_BUILT, note=note)
    current = (thaw(task.spec), dict(task.inputs), task.output)
    # Most recent first, then a stable sort on the number of differences.
    candidates.sort(key=lambda record: record.end, reverse=True)
    changes = [(compare(name, (*preimage_parts(r), r.preimage_id), current), r) for r in candidates]
    change, record = min(changes, key=lambda pair: _size(pair[0]))
    return Explanation(name, task.output, Verdict.CHANGED, record, change)


def _assess_upto(pipeline: Pipeline, name: str, store: OutputStore):
    """The plan's verdict on task ``name``: its ancestors are assessed first."""
    needed = {name} | pipeline.ancestors(name)
    tasks = [t for t in pipeline if t.name in needed]
    outputs = {t.name: t.output for t in tasks}
    return assess(outputs, {t.name: list(t.inputs) for t in tasks}, store.lookup_all)[name]


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
    generation: int | None = None

    @property
    def key(self) -> tuple[str, int | None]:
        """What makes two nodes the same: the output and its generation."""
        return self.output_id, self.generation


def lineage(
    store: OutputStore, output_id: str, verify: bool = False, generation: int | None = None
) -> LineageNode:
    """The tree of records that produced ``output_id`` (its current generation unless
    one is named), following the exact generation of each input its records say they
    read. Each distinct (output, generation) is read and verified once: a shared
    ancestor is one node, reached from every record that read it, so the work grows
    with the distinct outputs, not with the paths to them (a DAG of diamonds has
    exponentially many). The walk keeps its own queue, so a chain of any length fits."""
    found = store.lookup(output_id) if generation is None else store.read(output_id, generation)
    root = _node(store, output_id, found, verify)
    nodes = {root.key: root}
    queue = [root]
    while queue:
        parent = queue.pop()
        if parent.record is None:
            continue
        for name, oid in sorted(parent.record.inputs.items()):
            key = (oid, parent.record.read_generation(name))
            if key not in nodes:
                nodes[key] = _node(store, oid, store.read(*key), verify)
                queue.append(nodes[key])
            # Filled in place: the child may be reached again before its own inputs are.
            parent.inputs[name] = _as_read(nodes[key], parent.record.input_digests.get(name))
    return root


def _as_read(node: LineageNode, digest: str | None) -> LineageNode:
    """``node`` as a reader that read files of ``digest`` finds it: itself, unless its
    generation now holds other files (made again where no tombstone kept its number):
    then what was read is gone, and its lineage with it."""
    if digest is None or node.record is None or node.record.digest == digest:
        return node
    reason = (
        f"generation {node.generation} now holds other files than the ones read "
        "(it was removed and made again): what was read is gone"
    )
    return LineageNode(node.output_id, None, Check.MISSING, (reason,))


@dataclass(frozen=True)
class Occurrence:
    """One place a node takes in the tree as printed: under the occurrence numbered
    ``parent`` (None for the root), as its input ``name``."""

    parent: int | None
    name: str
    node: LineageNode
    repeated: bool  # shown in full at an earlier occurrence: refer to it, do not repeat


def occurrences(tree: LineageNode) -> Iterator[Occurrence]:
    """The tree as printed, depth first with inputs in name order, numbered from 0 in
    the order yielded. A node met before is yielded once more, repeated, and its inputs
    are not walked again, as tree printers refer back to a subtree shown above: the
    printout grows with the distinct nodes and the records' inputs, not the paths."""
    seen: set[tuple[str, int | None]] = set()
    stack: list[tuple[int | None, str, LineageNode]] = [(None, "", tree)]
    number = 0
    while stack:
        parent, name, node = stack.pop()
        repeated = node.key in seen
        yield Occurrence(parent, name, node, repeated)
        if not repeated:
            seen.add(node.key)
            stack.extend((number, n, child) for n, child in reversed(node.inputs.items()))
        number += 1


def _node(store, output_id, found, verify) -> LineageNode:
    if found.record is None:
        reason = found.reason or "no record"
        return LineageNode(output_id, None, Check.MISSING, (reason,), generation=found.generation)
    record = found.record
    check, problems = _verify(store, record) if verify else (None, ())
    return LineageNode(output_id, record, check, problems, {}, record.generation)


def _verify(store: OutputStore, record: SuccessRecord) -> tuple[Check, tuple[str, ...]]:
    preimage = base64.b64decode(record.preimage_b64)
    if id_of(preimage) != record.preimage_id:
        return Check.BAD_PREIMAGE, ()
    with tempfile.TemporaryDirectory(prefix="alamode-verify-") as scratch:
        problems = verify(store.fetch(record, Path(scratch) / "data"), record.manifest)
    return (Check.BAD_DATA if problems else Check.OK), tuple(problems)
