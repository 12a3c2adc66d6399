"""``alamode graph``: the pipeline drawn in layers, one per topological generation."""

from __future__ import annotations

from pathlib import Path

from a_la_mode import AlamodeError, Pipeline

FORMATS = {".svg": "svg", ".png": "png"}


def draw(pipeline: Pipeline, output: Path) -> None:
    """Write an SVG or PNG of ``pipeline``: nodes labelled with name and short ID."""
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise AlamodeError(f"cannot draw to {output.suffix!r}; use .svg or .png", file=str(output))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import networkx as nx
    except ImportError as exc:
        raise AlamodeError(
            "drawing needs the 'graph' extra: pip install 'alamode-airflow[graph]'"
        ) from exc
    graph = nx.DiGraph()
    for task in pipeline:
        graph.add_node(task.name, label=f"{task.name}\n{task.short_id}")
        graph.add_edges_from((dep, task.name) for dep in task.inputs)
    for layer, names in enumerate(nx.topological_generations(graph)):
        for name in names:
            graph.nodes[name]["layer"] = layer
    pos = nx.multipartite_layout(graph, subset_key="layer")
    layers = max((d["layer"] for _, d in graph.nodes(data=True)), default=0) + 1
    fig, ax = plt.subplots(figsize=(max(4, 2.6 * layers), max(3, 1.2 * _widest(graph))))
    nx.draw_networkx_edges(graph, pos, ax=ax, arrows=True, node_size=3000)
    nx.draw_networkx_labels(
        graph,
        pos,
        labels=nx.get_node_attributes(graph, "label"),
        ax=ax,
        font_size=9,
        bbox={"boxstyle": "round", "facecolor": "#fdf1dc", "edgecolor": "#8a6d3b"},
    )
    ax.set_axis_off()
    fig.savefig(output, format=fmt, bbox_inches="tight")
    plt.close(fig)


def _widest(graph) -> int:
    counts: dict[int, int] = {}
    for _, data in graph.nodes(data=True):
        counts[data["layer"]] = counts.get(data["layer"], 0) + 1
    return max(counts.values(), default=1)
