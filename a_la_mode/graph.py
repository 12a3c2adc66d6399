"""Topological order and cycle finding over a name -> dependency-names mapping.

Both are iterative (Kahn's algorithm, an explicit walk), so a 100,000-task chain needs
no recursion and each task and edge is visited once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from a_la_mode.errors import CycleError, DependencyError


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Names ordered so that every task comes after all its dependencies.

    Ties keep the mapping's own order, so the result is deterministic.

    >>> topological_order({"c": ["a", "b"], "b": ["a"], "a": []})
    ['a', 'b', 'c']
    """
    waiting = {}
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, names in deps.items():
        # Mapping keys are unique already; other iterables may repeat a name.
        unique = names if isinstance(names, Mapping) else set(names)
        for dep in unique:
            if dep not in dependents:
                raise DependencyError(f"depends on unknown task {dep!r}", task=name)
            dependents[dep].append(name)
        waiting[name] = len(unique)
    ready = deque(name for name, count in waiting.items() if count == 0)
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for child in dependents[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(waiting):
        raise CycleError(find_cycle(deps, {n for n, c in waiting.items() if c}))
    return order


def find_cycle(deps: Mapping[str, Iterable[str]], stuck: set[str]) -> list[str]:
    """One cycle among ``stuck`` (tasks Kahn's algorithm could not order), in
    dependency order: each task depends on the one after it."""
    # Every stuck task has a stuck dependency, so walking dependencies from any stuck
    # task must revisit a task; the walk from that first repeat is the cycle.
    name = min(stuck)
    seen: dict[str, int] = {}
    path: list[str] = []
    while name not in seen:
        seen[name] = len(path)
        path.append(name)
        name = min(dep for dep in deps[name] if dep in stuck)
    return path[seen[name] :]
