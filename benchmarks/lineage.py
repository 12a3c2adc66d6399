"""``alamode lineage --verify`` on a diamond ladder: is each shared ancestor visited once?

Run it from the repo root with ``PYTHONPATH=. .venv/bin/python benchmarks/lineage.py``
(``--levels N``, default 60; ``--runs N``, default 5, the median is printed).

A diamond ladder of N levels (``top0 -> (l0, r0) -> top1 -> ... -> topN``, 3N + 1 tasks)
has 2**N paths from its last task to its first, so a walk without a memo reads the first
task's record 2**N times. The store is filled as the engine fills it, then, on the same
warm store, in alternating order:

- baseline: the floor, one lookup and one manifest check per output (every record
  read and every file hashed once, nothing walked);
- lineage: ``alamode lineage --verify`` and ``--verify --json`` through the command's
  entry point, printed into memory: the walk, the checks and the printout.

Also printed: how many records the walk read, beside the number of outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path

from plan import fill
from report import timed

from alamode_airflow.cli import main as alamode
from alamode_airflow.history import lineage
from alamode_airflow.manifests import verify
from alamode_airflow.store import OutputStore
from tests.unit.storefill import diamond_ladder


class Counting(OutputStore):
    """The local store, counting the records it reads."""

    reads = 0

    def _read(self, output_id, generation, keys):
        # Every record read, by a lookup or by ``read``, goes through here.
        Counting.reads += 1
        return super()._read(output_id, generation, keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    tasks = diamond_ladder(args.levels, "lineage_bench")
    last = tasks[f"top{args.levels}"].output
    with tempfile.TemporaryDirectory(prefix="alamode-bench-lineage-") as root:
        store = Counting(str(Path(root) / "store"))
        fill(store, tasks)

        def baseline():
            for task in tasks:
                record = store.lookup(task.output).record
                assert not verify(store.fetch(record, Path(root) / "unused"), record.manifest)

        def command(*flags):
            def run():
                with contextlib.redirect_stdout(io.StringIO()):
                    assert alamode(["lineage", last, "--store", store.url, *flags]) == 0

            return run

        Counting.reads = 0
        lineage(store, last, verify=True)
        reads = Counting.reads
        steps = {
            "baseline": baseline,
            "tree": command("--verify"),
            "json": command("--verify", "--json"),
        }
        times: dict[str, list[float]] = {label: [] for label in steps}
        for run in range(args.runs):
            order = list(steps.items())
            for label, step in order if run % 2 else reversed(order):
                times[label].append(timed(step))
    base, tree, json_ = (statistics.median(times[k]) for k in ("baseline", "tree", "json"))
    print(
        f"lineage --verify, diamond ladder of {args.levels} levels ({len(tasks)} tasks, "
        f"2**{args.levels} paths), local root, median of {args.runs} runs"
    )
    print(f"  baseline (lookup + verify each output)  {base:8.3f} s")
    print(f"  alamode lineage --verify               {tree:8.3f} s  ({tree / base:.2f}x)")
    print(f"  alamode lineage --verify --json        {json_:8.3f} s  ({json_ / base:.2f}x)")
    print(f"  records read by the walk               {reads:8d}    ({len(tasks)} outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
