"""Pipeline shapes the benchmarks build: task name -> dependency names, in
topological order."""

from __future__ import annotations

import math
import random

Graph = dict[str, list[str]]  # task name -> dependency names, in topological order


# --- shapes -----------------------------------------------------------------------------


def name_of(i: int) -> str:
    return f"t{i:06d}"


def chain(n: int) -> Graph:
    return {name_of(i): [name_of(i - 1)] if i else [] for i in range(n)}


def fan(n: int) -> Graph:
    root = name_of(0)
    return {root: [], **{name_of(i): [root] for i in range(1, n)}}


def ladder(n: int) -> Graph:
    """Levels of two tasks; each task depends on both tasks of the level before."""
    graph: Graph = {}
    for i in range(n):
        level = i // 2
        graph[name_of(i)] = [name_of(2 * level - 2), name_of(2 * level - 1)] if level else []
    return graph


def random_layered(n: int, seed: int = 20240601) -> Graph:
    """Layers of ~sqrt(n) tasks; each task reads 1-3 random tasks of earlier layers."""
    rng = random.Random(seed)
    width = max(1, round(math.sqrt(n)))
    graph: Graph = {}
    for i in range(n):
        earlier = (i // width) * width  # tasks before this task's layer
        k = min(rng.randint(1, 3), earlier)
        graph[name_of(i)] = [name_of(j) for j in rng.sample(range(earlier), k)]
    return graph
