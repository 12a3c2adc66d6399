"""The lineage picture: layers, order within a layer, one node per distinct output."""

from __future__ import annotations

import html
import re

from alamode_airflow.view import svg
from alamode_airflow.view.svg import GAP_X, WIDTH, Box, depths, draw, layers


def boxes(*keys: str) -> list[Box]:
    return [Box(key, f"id-{key}", key, ("line",), f"/alamode/outputs/{key}") for key in keys]


def places(picture: str) -> dict[str, tuple[int, int]]:
    """Each node's box corner, by its data-output-id."""
    pattern = r'data-output-id="id-(\w+)">.*?<rect x="(\d+)" y="(\d+)"'
    found = re.findall(pattern, picture, flags=re.S)
    return {key: (int(x), int(y)) for key, x, y in found}


def test_an_input_is_left_of_every_output_that_read_it():
    # root reads a and c; a reads b; c reads b too: b is two steps away through a.
    edges = [("root", "a"), ("root", "c"), ("a", "b"), ("c", "b"), ("b", "d")]
    assert depths("root", edges) == {"root": 0, "a": 1, "c": 1, "b": 2, "d": 3}
    picture = draw(boxes("root", "a", "b", "c", "d"), edges, "root")
    at = places(picture)
    for reader, source in edges:
        assert at[source][0] + WIDTH + GAP_X <= at[reader][0], (reader, source)


def test_longest_path_decides_the_layer():
    # b is read by root directly and through a: it goes left of a, not beside it.
    edges = [("root", "a"), ("root", "b"), ("a", "b")]
    assert layers("root", edges) == [["root"], ["a"], ["b"]]


def test_a_layer_follows_its_readers_so_edges_do_not_cross():
    # Sorted by name, a_input would sit above z_input and the two edges would cross.
    edges = [("root", "top"), ("root", "bottom"), ("top", "a_input"), ("bottom", "z_input")]
    by_layer = layers("root", edges)
    assert by_layer[1] == ["bottom", "top"]  # both read by root: by name
    assert by_layer[2] == ["z_input", "a_input"]  # z_input's reader (bottom) comes first
    at = places(draw(boxes("root", "top", "bottom", "z_input", "a_input"), edges, "root"))
    assert (at["bottom"][1] < at["top"][1]) == (at["z_input"][1] < at["a_input"][1])


def test_one_node_per_distinct_output_and_its_links():
    edges = [("root", "l"), ("root", "r"), ("l", "shared"), ("r", "shared")]
    picture = draw(boxes("root", "l", "r", "shared"), edges, "root")
    assert picture.count('<g class="node') == 4
    assert sorted(re.findall(r'data-output-id="id-(\w+)"', picture)) == ["l", "r", "root", "shared"]
    assert picture.count('class="edge"') == 4
    assert 'href="/alamode/outputs/shared"' in picture


def test_text_is_escaped_and_cut():
    box = Box("k", 'id"><script>', "<script>alert(1)</script>", ("a & b", "x" * 80))
    picture = draw([box], [], "k")
    assert "<script>" not in picture
    assert "&lt;script&gt;" in picture
    assert "a &amp; b" in picture
    assert 'data-output-id="id&quot;&gt;&lt;script&gt;"' in picture
    shown = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", picture)]
    assert max(len(text) for text in shown) == svg.CHARS  # cut on the box ...
    assert "x" * 80 in picture.split("</title>")[0]  # ... whole in the tooltip


def test_a_long_chain_needs_no_recursion():
    edges = [(f"n{i}", f"n{i + 1}") for i in range(5000)]
    assert depths("n0", edges)["n5000"] == 5000
