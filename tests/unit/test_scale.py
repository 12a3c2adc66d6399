"""Shapes that break a recursive encoder: each must encode and load at all (a naive
encoder recurses 10,000 deep on the chain and walks 2**60 paths on the ladder).
Speed figures live in benchmarks/encode.py."""

from __future__ import annotations

from a_la_mode import Dag, load


def test_ten_thousand_task_chain():
    dag = Dag()
    previous = dag.task("t0", {"n": 0})
    for n in range(1, 10_000):
        previous = dag.task(f"t{n}", {"n": n}).add_dep(previous)
    pipeline = load(dag.bencode())
    assert pipeline.order[0] == "t0"
    assert pipeline.order[-1] == "t9999"
    assert len(pipeline.descendants("t0")) == 9_999


def test_sixty_level_diamond_ladder():
    dag = Dag()
    level = [dag.task("l0a", {"side": "a"}), dag.task("l0b", {"side": "b"})]
    for n in range(1, 60):
        below = level
        level = [dag.task(f"l{n}{side}", {"side": side}) for side in "ab"]
        for task in level:
            task.add_dep(below)
    encoded = dag.encode()
    # Same spec and same inputs on every level above 0: the two sides share nothing but
    # their own spec, so all 120 IDs differ.
    assert len({record["output"] for record in encoded["tasks"].values()}) == 120
    assert load(dag.bencode()).descendants("l0a") == {
        f"l{n}{side}" for n in range(1, 60) for side in "ab"
    }
