"""What changed between two versions of a pipeline, and why each ID changed."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from a_la_mode.pipeline import Pipeline
from a_la_mode.values import thaw

_MISSING = object()


class ChangeKind(enum.Enum):
    """Why a task's output ID changed."""

    SPEC = "spec"  # its own spec changed
    UPSTREAM = "upstream"  # only the IDs it reads from changed
    SPEC_AND_UPSTREAM = "spec+upstream"
    INPUTS = "inputs"  # its set of dependencies changed (and perhaps more)


@dataclass(frozen=True)
class KeyChange:
    """One spec (or meta) key: ``old``/``new`` are None where the key is absent."""

    key: str
    old: Any
    new: Any


@dataclass(frozen=True)
class TaskChange:
    name: str
    kind: ChangeKind
    old_output: str
    new_output: str
    spec_changes: tuple[KeyChange, ...] = ()
    upstream_changed: tuple[str, ...] = ()
    inputs_added: tuple[str, ...] = ()
    inputs_removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiffResult:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[TaskChange, ...]
    meta_changes: tuple[KeyChange, ...]

    @property
    def equal(self) -> bool:
        return not (self.added or self.removed or self.changed or self.meta_changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary (enums as their values)."""
        data = asdict(self)
        for change in data["changed"]:
            change["kind"] = change["kind"].value
        data["equal"] = self.equal
        return data


def diff(old: Pipeline, new: Pipeline) -> DiffResult:
    """Compare two pipelines task by task (tasks are matched by name).

    >>> from a_la_mode import Dag, load
    >>> dag = Dag({})
    >>> _ = dag.task("a", {"sha": "1"}) >> dag.task("b", {"sha": "1"})
    >>> before = load(dag.bencode())
    >>> dag.a.spec["sha"] = "2"
    >>> [(c.name, c.kind.value) for c in diff(before, load(dag.bencode())).changed]
    [('a', 'spec'), ('b', 'upstream')]
    """
    changed = tuple(
        _task_change(old[name], new[name])
        for name in new.order
        if name in old.tasks and old[name].output != new[name].output
    )
    return DiffResult(
        added=tuple(name for name in new.order if name not in old.tasks),
        removed=tuple(name for name in old.order if name not in new.tasks),
        changed=changed,
        meta_changes=key_changes(thaw(old.meta), thaw(new.meta), nested=True),
    )


def key_changes(
    old: dict[str, Any], new: dict[str, Any], *, nested: bool = False, prefix: str = ""
) -> tuple[KeyChange, ...]:
    """Keys whose values differ between two dictionaries, sorted. ``nested``: where
    both sides (or the one present) are dictionaries, the keys inside them instead,
    as dotted paths (meta ``tasks.blur.pool``, not the whole ``tasks``).

    >>> key_changes({"tasks": {"a": {"pool": "db"}}}, {"tasks": {"a": {"pool": "gpu"}}},
    ...             nested=True)
    (KeyChange(key='tasks.a.pool', old='db', new='gpu'),)
    """
    changes: list[KeyChange] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if before == after:
            continue
        if nested and {type(before), type(after)} <= {dict, type(_MISSING)}:
            inner = {} if before is _MISSING else before, {} if after is _MISSING else after
            changes.extend(key_changes(*inner, nested=True, prefix=f"{prefix}{key}."))
        else:
            changes.append(KeyChange(prefix + key, old.get(key), new.get(key)))
    return tuple(changes)


def _task_change(old, new) -> TaskChange:
    return compare(
        new.name,
        (thaw(old.spec), dict(old.inputs), old.output),
        (thaw(new.spec), dict(new.inputs), new.output),
    )


def compare(name: str, old: tuple, new: tuple) -> TaskChange:
    """How one task's (spec, inputs, output) moved from ``old`` to ``new``.

    >>> change = compare("t", ({"sha": "1"}, {"a": "x"}, "o1"), ({"sha": "2"}, {"a": "y"}, "o2"))
    >>> change.kind.value, change.upstream_changed
    ('spec+upstream', ('a',))
    """
    (old_spec, old_inputs, old_output), (new_spec, new_inputs, new_output) = old, new
    spec_changes = key_changes(old_spec, new_spec)
    added = tuple(sorted(set(new_inputs) - set(old_inputs)))
    removed = tuple(sorted(set(old_inputs) - set(new_inputs)))
    upstream = tuple(
        sorted(d for d in new_inputs if d in old_inputs and new_inputs[d] != old_inputs[d])
    )
    if added or removed:
        kind = ChangeKind.INPUTS
    elif spec_changes and upstream:
        kind = ChangeKind.SPEC_AND_UPSTREAM
    elif spec_changes:
        kind = ChangeKind.SPEC
    else:
        kind = ChangeKind.UPSTREAM
    return TaskChange(name, kind, old_output, new_output, spec_changes, upstream, added, removed)
