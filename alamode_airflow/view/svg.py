"""An output's lineage as a picture, drawn here as SVG: a layered graph with the output
on the right and what it was made from to its left, one box per distinct (output,
generation), an edge from each input to each output that read it.

Layers are the longest path to the output (an input sits left of every output that read
it, so every edge points right); within a layer, boxes are ordered by where their
readers are (the barycentre of one sweep from the output leftwards), which keeps the
edges of a chain or a diamond uncrossed. Pure: boxes and edges in, markup out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alamode_airflow.view.html import attr, esc

WIDTH, HEIGHT = 220, 58  # a box
GAP_X, GAP_Y, MARGIN = 70, 18, 10
CHARS = 30  # of a line of text in a box


@dataclass(frozen=True)
class Box:
    key: str  # unique in the picture: output ID and generation
    output_id: str
    title: str  # the task's name, or the short ID of an output without a record
    lines: tuple[str, ...] = ()  # shown under the title (two fit)
    href: str | None = None  # where a click goes
    kind: str = ""  # "root", "bad" (a failed check or no record) or ""


def depths(root: str, edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each key's longest distance from ``root`` along ``edges`` (reader, input): the
    graph is acyclic (an output's ID covers its inputs' IDs). Keys not reached from
    ``root`` are left out."""
    inputs: dict[str, list[str]] = defaultdict(list)
    for reader, source in edges:
        inputs[reader].append(source)
    reached, stack = {root}, [root]
    while stack:
        for source in inputs[stack.pop()]:
            if source not in reached:
                reached.add(source)
                stack.append(source)
    readers_left = defaultdict(int)  # Kahn's count: readers not yet placed
    for reader in reached:
        for source in inputs[reader]:
            readers_left[source] += 1
    depth, ready = {root: 0}, [root]
    while ready:
        reader = ready.pop()
        for source in inputs[reader]:
            depth[source] = max(depth.get(source, 0), depth[reader] + 1)
            readers_left[source] -= 1
            if readers_left[source] == 0:
                ready.append(source)
    return depth


def layers(root: str, edges: Sequence[tuple[str, str]]) -> list[list[str]]:
    """The keys by layer, the root's first, each layer ordered by its readers' places."""
    depth = depths(root, edges)
    readers: dict[str, list[str]] = defaultdict(list)
    for reader, source in edges:
        readers[source].append(reader)
    by_layer: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for key in sorted(depth):
        by_layer[depth[key]].append(key)
    place = {root: 0.0}
    for layer in by_layer[1:]:
        # Readers are always in earlier layers, so each has its place already.
        def centre(key: str) -> float:
            seen = [place[r] for r in readers[key] if r in place]
            return sum(seen) / len(seen) if seen else 0.0

        layer.sort(key=centre)
        place.update((key, float(n)) for n, key in enumerate(layer))
    return by_layer


def draw(boxes: Sequence[Box], edges: Sequence[tuple[str, str]], root: str) -> str:
    """The SVG of ``boxes`` joined by ``edges`` (reader key, input key)."""
    by_key = {box.key: box for box in boxes}
    columns = layers(root, edges)
    tallest = max(len(column) for column in columns)
    width = 2 * MARGIN + len(columns) * WIDTH + (len(columns) - 1) * GAP_X
    height = 2 * MARGIN + tallest * HEIGHT + (tallest - 1) * GAP_Y
    at: dict[str, tuple[int, int]] = {}
    for depth, column in enumerate(columns):
        x = MARGIN + (len(columns) - 1 - depth) * (WIDTH + GAP_X)
        top = MARGIN + (tallest - len(column)) * (HEIGHT + GAP_Y) // 2
        for row, key in enumerate(column):
            at[key] = (x, top + row * (HEIGHT + GAP_Y))
    parts = [_edge(at[source], at[reader]) for reader, source in edges if source in at]
    parts += [_box(by_key[key], *at[key]) for column in columns for key in column]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">' + "".join(parts) + "</svg>"
    )


def _edge(source: tuple[int, int], reader: tuple[int, int]) -> str:
    x1, y1 = source[0] + WIDTH, source[1] + HEIGHT // 2
    x2, y2 = reader[0], reader[1] + HEIGHT // 2
    bend = (x2 - x1) // 2
    return f'<path class="edge" d="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"/>'


def _box(box: Box, x: int, y: int) -> str:
    texts = [f'<text x="{x + 8}" y="{y + 18}" font-weight="600">{esc(_cut(box.title))}</text>']
    texts += [
        f'<text x="{x + 8}" y="{y + 34 + 14 * n}">{esc(_cut(line))}</text>'
        for n, line in enumerate(box.lines[:2])
    ]
    inner = f'<rect x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" rx="6"/>' + "".join(texts)
    if box.href:
        inner = f'<a href="{attr(box.href)}">{inner}</a>'
    tip = " \n".join([box.title, *box.lines])
    kind = f" {box.kind}" if box.kind else ""
    return (
        f'<g class="node{kind}" data-output-id="{attr(box.output_id)}">'
        f"<title>{esc(tip)}</title>{inner}</g>"
    )


def _cut(text: str) -> str:
    return text if len(text) <= CHARS else text[: CHARS - 1] + "\u2026"
