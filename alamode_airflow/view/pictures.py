"""An output's lineage tree (``history.lineage``) as the boxes and edges ``svg`` draws."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from a_la_mode.ids import short
from alamode_airflow.view import svg


def key(node: Any) -> str:
    return f"{node.output_id}:{node.generation}"


def lineage_svg(links: Any, tree: Any, nodes: Sequence[Any], readable: Collection[str]) -> str:
    """One box per distinct (output, generation) of ``nodes`` (the tree's, its output
    first), an edge from each input to each output whose record read it. Outputs of
    DAGs not in ``readable`` show their short ID alone."""
    boxes, edges = [], []
    for node in nodes:
        boxes.append(_box(links, node, node is tree, readable))
        edges += [(key(node), key(source)) for source in node.inputs.values()]
    return svg.draw(boxes, sorted(set(edges)), key(tree))


def _box(links: Any, node: Any, root: bool, readable: Collection[str]) -> svg.Box:
    record = node.record
    bad = node.check is not None and node.check.value != "ok"
    kind = "root" if root else ("bad" if bad or record is None else "")
    href = links.output(node.output_id, node.generation)
    if record is None:
        return svg.Box(key(node), node.output_id, short(node.output_id), ("no record",), href, kind)
    if record.dag_id not in readable:
        return svg.Box(key(node), node.output_id, short(node.output_id), ("(another DAG)",))
    lines = (f"{short(node.output_id)} gen {node.generation}", f"{record.run_id}")
    if node.check is not None:
        lines = (f"{short(node.output_id)} gen {node.generation}: {node.check.value}", lines[1])
    return svg.Box(key(node), node.output_id, record.task, lines, href, kind)
