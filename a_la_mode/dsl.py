"""The DSL: ``Dag``, ``Task`` and their dependencies, encoded to the seed's shape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import bencode

from a_la_mode.errors import DependencyError, SpecValueError, TaskNameError
from a_la_mode.files import atomic_write
from a_la_mode.graph import topological_order
from a_la_mode.ids import DIGEST_KEY, file_digest, output_id
from a_la_mode.names import check_name
from a_la_mode.values import check_spec, check_value


class Task:
    """One step of a pipeline: a name, a spec (any bencode dictionary) and dependencies.

    Create tasks with ``Dag.task``; ``spec`` stays a plain dictionary that may be
    changed until the Dag is encoded. ``settings`` says how an engine runs the task
    (pool, queue, retries, ...): it is written to meta ``tasks.<name>`` and, like all
    meta, never changes an output ID.
    """

    __slots__ = ("dag", "deps", "name", "settings", "spec")

    def __init__(
        self, dag: Dag, name: str, spec: dict[str, Any], settings: dict[str, Any] | None = None
    ) -> None:
        self.dag = dag
        self.name = name
        self.spec = spec
        self.settings = {} if settings is None else settings
        self.deps: dict[str, Task] = {}

    def add_dep(self, *tasks: Task | Iterable[Task]) -> Task:
        """Make this task depend on ``tasks`` (tasks, task names, or lists of them);
        returns self.

        >>> dag = Dag({})
        >>> a, b, c = dag.task("a", {}), dag.task("b", {}), dag.task("c", {})
        >>> sorted(c.add_dep(a, [b]).deps)
        ['a', 'b']
        """
        for dep in _flatten(tasks):
            if isinstance(dep, str):
                dep = self._resolve(dep)
            if dep is self:
                raise DependencyError("a task cannot depend on itself", task=self.name)
            if dep.dag is not self.dag:
                raise DependencyError(
                    f"depends on {dep.name!r}, a task of another Dag", task=self.name
                )
            self.deps[dep.name] = dep
        return self

    def _resolve(self, name: str) -> Task:
        try:
            return self.dag.tasks[name]
        except KeyError:
            raise DependencyError(f"depends on unknown task {name!r}", task=self.name) from None

    def __rshift__(self, other: Task | Iterable[Task]) -> Task | Iterable[Task]:
        """``a >> b``: b depends on a (Airflow's direction). Returns ``b`` for chaining."""
        for task in _flatten([other]):
            task.add_dep(self)
        return other

    def __lshift__(self, other: Task | Iterable[Task]) -> Task | Iterable[Task]:
        """``b << a``: b depends on a. Returns ``a`` for chaining."""
        self.add_dep(other)
        return other

    def __rrshift__(self, other: Iterable[Task]) -> Task:
        """``[a, b] >> c``: c depends on a and b."""
        self.add_dep(other)
        return self

    def __rlshift__(self, other: Iterable[Task]) -> Task:
        """``[b, c] << a``: b and c depend on a."""
        for task in _flatten([other]):
            task.add_dep(self)
        return self

    def __repr__(self) -> str:
        return f"<Task {self.name!r} deps={sorted(self.deps)}>"


class Dag:
    """A pipeline under construction. ``meta`` is about the whole pipeline (for the
    Airflow engine: ``schedule``, ``dag_id``, ...) and never changes an output ID.

    >>> dag = Dag({"schedule": "@daily"})
    >>> dl = dag.task("download", {"command": "python dl.py"})
    >>> dl >> dag.task("blur", {"command": "python blur.py"})
    <Task 'blur' deps=['download']>
    >>> dag.encode()["tasks"]["blur"]["inputs"]["download"][:12]
    '9a56573d0a1c'
    """

    def __init__(self, meta: dict[str, Any] | None = None) -> None:
        self.meta = {} if meta is None else meta
        self.tasks: dict[str, Task] = {}

    def task(self, name: str, spec: dict[str, Any] | None = None, **settings: Any) -> Task:
        """Add a task called ``name`` with ``spec``; returns it (also ``dag.<name>``).

        Keyword arguments are the task's execution settings (``pool="gpu"``,
        ``retries=3``): how it is run, not what it computes, so they go to meta
        ``tasks.<name>`` and change no output ID.

        >>> dag = Dag({"defaults": {"retries": 1}})
        >>> blur = dag.task("blur", {"command": "python blur.py"}, pool="gpu", retries=3)
        >>> dag.encode()["meta"]["tasks"]
        {'blur': {'pool': 'gpu', 'retries': 3}}
        """
        check_name(name)
        if name in self.tasks:
            raise TaskNameError("a task of this name already exists in the Dag", task=name)
        spec = {} if spec is None else spec
        check_spec(spec, name)
        check_value(settings, f"meta.tasks.{name}", name)
        self.tasks[name] = task = Task(self, name, spec, settings)
        return task

    def __getattr__(self, name: str) -> Task:
        # Only reached when normal lookup fails, so methods keep their names.
        tasks = self.__dict__.get("tasks", {})
        if name in tasks:
            return tasks[name]
        raise AttributeError(f"Dag has no task or attribute {name!r}")

    def __getitem__(self, name: str) -> Task:
        return self.tasks[name]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    def encode(self) -> dict[str, Any]:
        """The pipeline as a dictionary in the seed's shape: ``meta`` and ``tasks``,
        each task's spec with ``inputs`` and ``output`` added. Each task is hashed once,
        in topological order."""
        self._check_meta()
        for task in self.tasks.values():
            check_spec(task.spec, task.name)
        order = topological_order({t.name: t.deps for t in self.tasks.values()})
        records: dict[str, dict[str, Any]] = {}
        for name in order:
            task = self.tasks[name]
            inputs = {dep: records[dep]["output"] for dep in sorted(task.deps)}
            record = dict(task.spec)
            record["inputs"] = inputs
            record["output"] = output_id(task.spec, inputs)
            records[name] = record
        tasks = {name: records[name] for name in self.tasks}
        return {"meta": self._meta_with_settings(), "tasks": tasks}

    def _meta_with_settings(self) -> dict[str, Any]:
        """Meta, with each task's ``settings`` merged into meta ``tasks.<name>``."""
        meta = dict(self.meta)
        if not any(task.settings for task in self.tasks.values()):
            return meta  # meta is the engine's: left exactly as written
        given = meta.get("tasks", {})
        if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
            raise SpecValueError("must be a dictionary: task name -> settings", key="meta.tasks")
        written = {name: dict(value) for name, value in given.items()}
        for task in self.tasks.values():
            check_value(task.settings, f"meta.tasks.{task.name}", task.name)
            both = sorted(set(task.settings) & set(written.get(task.name, {})))
            if both:
                raise SpecValueError(
                    f"set both in meta and as task settings: {', '.join(both)}",
                    task=task.name,
                    key=f"meta.tasks.{task.name}",
                )
            if task.settings:
                written[task.name] = {**written.get(task.name, {}), **task.settings}
        if written:
            meta["tasks"] = written
        return meta

    def bencode(self) -> bytes:
        """The file's bytes: ``encode()`` bencoded, meta carrying the file digest."""
        return bencode_file(self.encode())

    def save(self, path: str | Path) -> Path:
        """Write the file atomically (a reader never sees half of it); returns the path."""
        return atomic_write(path, self.bencode())

    def _check_meta(self) -> None:
        if not isinstance(self.meta, dict):
            raise SpecValueError(f"meta must be a dictionary, not {type(self.meta).__name__}")
        if DIGEST_KEY in self.meta:
            raise SpecValueError(f"{DIGEST_KEY!r} is reserved: the encoder writes it", key="meta")
        check_value(self.meta, "meta")


def bencode_file(encoded: dict[str, Any]) -> bytes:
    """Bencode an encoded pipeline, adding the digest of its names and meta."""
    outputs = {name: record["output"] for name, record in encoded["tasks"].items()}
    meta = dict(encoded["meta"])
    meta[DIGEST_KEY] = file_digest(meta, outputs)
    return bencode.encode({"meta": meta, "tasks": encoded["tasks"]})


def _flatten(items: Iterable[Any]) -> Iterator[Task]:
    for item in items:
        if isinstance(item, (Task, str)):
            yield item
        elif isinstance(item, Iterable) and not isinstance(item, (str, bytes)):
            yield from _flatten(item)
        else:
            raise DependencyError(
                f"a dependency must be a Task (from Dag.task), not {type(item).__name__}"
            )
