"""Encode and load throughput of a-la-mode against a no-DSL floor.

Run it with ``make bench`` or ``PYTHONPATH=. .venv/bin/python benchmarks/encode.py`` from the repo
root. Options: ``--sizes 1000,10000,100000``, ``--shapes chain,fan,ladder,random``,
``--quick`` (sizes 1000 and 10000 only), ``--json PATH`` (write the rows),
``--check`` (exit 1 if any ratio ours/floor is over 2.0).

For four graph shapes and each size it prints tasks/s and peak memory for

- encode: ``dag.save(path)`` (building the Dag is timed apart, as "build"), and
- load: ``a_la_mode.load(path)``, which re-verifies every ID,

each beside the FLOOR measured in the same run: the same records hashed and bencoded
with bencode.py + hashlib and no DSL. The ratio ours/floor (of seconds) should stay at
or under 2.0. Then it times a naive recursive encoder (each dependency's ID recomputed
from scratch, no memo) on small chains and diamond ladders, to show the growth the
topological encoder avoids.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bencode
from report import best_time
from shapes import Graph, chain, fan, ladder, random_layered

from a_la_mode import Dag, load

TARGET = 2.0
SHAPES = ("chain", "fan", "ladder", "random")
DEFAULT_SIZES = (1000, 10000, 100000)
QUICK_SIZES = (1000, 10000)
META = {"schedule": "@daily"}
NAIVE_BUDGET_S = 5.0
NAIVE_CHAIN = (50, 100, 200, 400)
NAIVE_LADDER_LEVELS = (10, 14, 18, 20)

BUILDERS: dict[str, Callable[[int], Graph]] = {
    "chain": chain,
    "fan": fan,
    "ladder": ladder,
    "random": random_layered,
}


def make_specs(graph: Graph) -> dict[str, dict[str, Any]]:
    # Deterministic, distinct, realistic-sized specs: the spec is most of each record.
    return {
        name: {
            "image": "img",
            "sha": f"{(i * 2654435761) & 0xFFFFFFF:07x}",
            "command": f"python step.py {name}",
            "env": {"N": i},
        }
        for i, name in enumerate(graph)
    }


def build_dag(graph: Graph, specs: dict[str, dict[str, Any]]) -> Dag:
    dag = Dag(dict(META))
    for name, deps in graph.items():
        dag.task(name, dict(specs[name])).add_dep(*deps)
    return dag


# --- the floor: bencode.py + sha256, no DSL -------------------------------------------


def floor_encode(graph: Graph, specs: dict[str, dict[str, Any]], path: Path) -> dict[str, str]:
    ids: dict[str, str] = {}
    records = {}
    for name, deps in graph.items():  # the graph is already in topological order
        record = dict(specs[name], inputs={dep: ids[dep] for dep in deps})
        ids[name] = record["output"] = hashlib.sha256(bencode.encode(record)).hexdigest()
        records[name] = record
    path.write_bytes(bencode.encode({"meta": dict(META), "tasks": records}))
    return ids


def floor_load(path: Path) -> dict[str, Any]:
    top = bencode.decode(path.read_bytes())
    for record in top["tasks"].values():
        without_output = {k: v for k, v in record.items() if k != "output"}
        hashlib.sha256(bencode.encode(without_output)).hexdigest()
    return top


# --- the naive encoder: the SPEC rule, recursive, no memo -------------------------------


def naive_encode(graph: Graph, specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each task's ID computed by recursing into its dependencies afresh, as the seed
    did: correct, but a diamond ladder of L levels costs ~2**L hashes."""

    def output(name: str) -> str:
        inputs = {dep: output(dep) for dep in graph[name]}
        return hashlib.sha256(bencode.encode(dict(specs[name], inputs=inputs))).hexdigest()

    tasks = {}
    for name, deps in graph.items():
        record = dict(specs[name], inputs={dep: output(dep) for dep in deps})
        record["output"] = output(name)
        tasks[name] = record
    return {"meta": dict(META), "tasks": tasks}


# --- measuring ------------------------------------------------------------------------


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of what ``fn`` allocates, in its own pass: tracemalloc slows every
    allocation, so it is never on while timing."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak


def measure(ours: Callable[[], object], floor: Callable[[], object], repeats: int) -> dict:
    return {
        "ours_s": best_time(ours, repeats),
        "floor_s": best_time(floor, repeats),
        "ours_peak": peak_bytes(ours),
        "floor_peak": peak_bytes(floor),
    }


def run_case(shape: str, n: int, tmp: Path) -> list[dict[str, Any]]:
    graph = BUILDERS[shape](n)
    specs = make_specs(graph)
    repeats = 3 if n <= 10000 else 1
    start = time.perf_counter()
    dag = build_dag(graph, specs)
    build_s = time.perf_counter() - start
    ours_path, floor_path = tmp / f"{shape}-{n}.alm", tmp / f"{shape}-{n}.floor"
    encode = measure(
        lambda: dag.save(ours_path), lambda: floor_encode(graph, specs, floor_path), repeats
    )
    check_same_ids(ours_path, floor_encode(graph, specs, floor_path))
    loaded = measure(lambda: load(ours_path), lambda: floor_load(floor_path), repeats)
    base = {"shape": shape, "tasks": n}
    return [
        finish_row({**base, "phase": "encode", "build_s": build_s, **encode}),
        finish_row({**base, "phase": "load", "build_s": None, **loaded}),
    ]


def check_same_ids(ours_path: Path, floor_ids: dict[str, str]) -> None:
    # The comparison is only honest if both sides computed the same IDs.
    ours = {name: task.output for name, task in load(ours_path).tasks.items()}
    assert ours == floor_ids, "floor and a_la_mode disagree on output IDs"


def finish_row(row: dict[str, Any]) -> dict[str, Any]:
    row["ours_tps"] = row["tasks"] / row["ours_s"]
    row["floor_tps"] = row["tasks"] / row["floor_s"]
    row["ratio"] = row["ours_s"] / row["floor_s"]
    row["mem_ratio"] = row["ours_peak"] / max(row["floor_peak"], 1)
    row["pass"] = row["ratio"] <= TARGET
    return row


# --- naive comparison -----------------------------------------------------------------


def naive_cases() -> list[tuple[str, int, str]]:
    chains = [("chain", n, f"{n} tasks") for n in NAIVE_CHAIN]
    ladders = [("ladder", 2 * lv, f"{lv} levels ({2 * lv} tasks)") for lv in NAIVE_LADDER_LEVELS]
    return chains + ladders


def check_naive_agrees() -> None:
    for graph in (chain(50), ladder(20), random_layered(60)):
        specs = make_specs(graph)
        naive = naive_encode(graph, specs)["tasks"]
        assert naive == build_dag(graph, specs).encode()["tasks"], "naive encoder disagrees"


def naive_rows() -> list[dict[str, Any]]:
    """Naive vs ours (``Dag.encode``, same dictionary out) on small inputs; a shape's
    larger sizes are skipped once one takes over the budget, as growth is exponential
    on ladders."""
    check_naive_agrees()
    rows, over_budget = [], set()
    for shape, n, label in naive_cases():
        graph = BUILDERS[shape](n)
        specs = make_specs(graph)
        dag = build_dag(graph, specs)
        row = {"shape": shape, "size": label, "tasks": n, "naive_s": None}
        row["ours_s"] = best_time(dag.encode, 3)
        if shape not in over_budget:
            row["naive_s"] = best_time(lambda g=graph, s=specs: naive_encode(g, s), 1)
            if row["naive_s"] > NAIVE_BUDGET_S:
                over_budget.add(shape)
        rows.append(row)
        print_naive_row(row)
    return rows


# --- output ---------------------------------------------------------------------------

COLUMNS = (
    ("shape", 6),
    ("tasks", 7),
    ("phase", 6),
    ("build s", 8),
    ("ours tasks/s", 12),
    ("floor tasks/s", 13),
    ("ratio", 6),
    ("ours MB", 8),
    ("floor MB", 8),
    ("mem x", 6),
    ("<=2.0", 5),
)
NAIVE_COLUMNS = (("shape", 6), ("size", 20), ("naive s", 10), ("ours s", 10), ("naive/ours", 10))


def line(cells: list[str], columns: tuple[tuple[str, int], ...]) -> str:
    # The first column reads as a label (left-aligned); the rest are numbers.
    parts = [cells[0].ljust(columns[0][1])]
    parts += [c.rjust(w) for c, (_, w) in zip(cells[1:], columns[1:], strict=True)]
    return "  ".join(parts)


def header(columns: tuple[tuple[str, int], ...]) -> None:
    print(line([name for name, _ in columns], columns))
    print(line(["-" * w for _, w in columns], columns))


def print_row(row: dict[str, Any]) -> None:
    build = "" if row["build_s"] is None else f"{row['build_s']:.3f}"
    cells = [
        row["shape"],
        f"{row['tasks']:,}",
        row["phase"],
        build,
        f"{row['ours_tps']:,.0f}",
        f"{row['floor_tps']:,.0f}",
        f"{row['ratio']:.2f}",
        f"{row['ours_peak'] / 1e6:.1f}",
        f"{row['floor_peak'] / 1e6:.1f}",
        f"{row['mem_ratio']:.2f}",
        "PASS" if row["pass"] else "FAIL",
    ]
    print(line(cells, COLUMNS), flush=True)


def print_naive_row(row: dict[str, Any]) -> None:
    naive = row["naive_s"]
    cells = [
        row["shape"],
        row["size"],
        "skipped" if naive is None else f"{naive:.4f}",
        f"{row['ours_s']:.4f}",
        "" if naive is None else f"{naive / row['ours_s']:,.0f}x",
    ]
    print(line(cells, NAIVE_COLUMNS), flush=True)


# --- command line ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--quick", action="store_true", help="sizes 1000 and 10000 only")
    parser.add_argument("--check", action="store_true", help="exit 1 if a ratio is over 2.0")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
    shapes = tuple(s.strip() for s in args.shapes.split(","))
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        parser.error(f"unknown shapes {unknown}; choose from {','.join(SHAPES)}")
    args.sizes, args.shapes = sizes, shapes
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(f"ratio = ours seconds / floor seconds (target <= {TARGET}); MB = tracemalloc peak")
    header(COLUMNS)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="alamode-bench-") as tmp:
        for shape in args.shapes:
            for n in args.sizes:
                for row in run_case(shape, n, Path(tmp)):
                    print_row(row)
                    rows.append(row)
    print("\nnaive recursive encoder (no memo) vs ours, Dag.encode, same output")
    header(NAIVE_COLUMNS)
    naive = naive_rows()
    failed = [r for r in rows if not r["pass"]]
    wall = time.perf_counter() - started
    print(f"\n{len(rows) - len(failed)}/{len(rows)} rows within {TARGET}x; wall {wall:.1f} s")
    if args.json:
        report = {"target": TARGET, "rows": rows, "naive": naive, "wall_s": wall}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
