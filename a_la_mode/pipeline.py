"""The loaded, verified, immutable pipeline an engine consumes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from a_la_mode.errors import IntegrityError
from a_la_mode.ids import preimage, short
from a_la_mode.values import thaw

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class PipelineTask:
    """One task as read from a file: its spec, its inputs (dependency name -> output ID)
    and its output ID, already checked against each other."""

    name: str
    spec: Mapping[str, Any]
    inputs: Mapping[str, str]
    output: str

    def __post_init__(self) -> None:
        if len(self.output) != 64 or not _HEX.issuperset(self.output):
            raise IntegrityError("output is not a sha256 hex digest", task=self.name)

    # Immutable, as its read-only mappings are (which cannot be copied): a copy is itself.
    def __copy__(self) -> PipelineTask:
        return self

    def __deepcopy__(self, memo: dict) -> PipelineTask:
        return self

    @property
    def short_id(self) -> str:
        return short(self.output)

    @property
    def deps(self) -> tuple[str, ...]:
        """Names of the tasks this one reads from, sorted."""
        return tuple(self.inputs)

    def preimage(self) -> bytes:
        """The bencoded spec + inputs whose sha256 is ``output`` (kept as provenance)."""
        return preimage(thaw(self.spec), self.inputs)

    def record(self) -> dict[str, Any]:
        """The task's record as the file holds it: spec, ``inputs``, ``output``."""
        record = thaw(self.spec)
        record["inputs"] = dict(self.inputs)
        record["output"] = self.output
        return record


@dataclass(frozen=True)
class Pipeline:
    """A verified pipeline. ``tasks`` is in topological order (every task after its
    dependencies); ``source`` names the file it came from, if any.

    >>> from a_la_mode import Dag, load
    >>> dag = Dag({"schedule": "@daily"})
    >>> dag.task("a", {"command": "echo a"}) >> dag.task("b", {"command": "echo b"})
    <Task 'b' deps=['a']>
    >>> pipeline = load(dag.bencode())
    >>> pipeline.order, pipeline.downstream("a"), pipeline.meta["schedule"]
    (('a', 'b'), ('b',), '@daily')
    """

    meta: Mapping[str, Any]
    tasks: Mapping[str, PipelineTask]
    source: str | None = None
    _downstream: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        children: dict[str, list[str]] = {name: [] for name in self.tasks}
        for task in self.tasks.values():
            for dep in task.inputs:
                children[dep].append(task.name)
        frozen = MappingProxyType({k: tuple(v) for k, v in children.items()})
        object.__setattr__(self, "_downstream", frozen)

    # Immutable, as its tasks are: a copy is itself (an operator deep-copied by Airflow
    # keeps its view of the pipeline, ``ancestors``, without copying every task).
    def __copy__(self) -> Pipeline:
        return self

    def __deepcopy__(self, memo: dict) -> Pipeline:
        return self

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(self.tasks)

    def __iter__(self) -> Iterator[PipelineTask]:
        return iter(self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, name: str) -> PipelineTask:
        return self.tasks[name]

    def upstream(self, name: str) -> tuple[str, ...]:
        """Names of the tasks ``name`` depends on directly."""
        return self.tasks[name].deps

    def downstream(self, name: str) -> tuple[str, ...]:
        """Names of the tasks that depend on ``name`` directly."""
        return self._downstream[name]

    def descendants(self, name: str) -> set[str]:
        """Every task downstream of ``name``, directly or not."""
        seen: set[str] = set()
        stack = [name]
        while stack:
            for child in self._downstream[stack.pop()]:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def ancestors(self, name: str) -> set[str]:
        """Every task ``name`` depends on, directly or not."""
        seen: set[str] = set()
        stack = [name]
        while stack:
            for parent in self.tasks[stack.pop()].deps:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    def encode(self) -> dict[str, Any]:
        """The dictionary ``Dag.encode`` would give for this pipeline."""
        return {
            "meta": thaw(self.meta),
            "tasks": {name: task.record() for name, task in self.tasks.items()},
        }
