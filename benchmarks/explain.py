"""``alamode explain`` on a large store: does it read only the task's own records?

Run it from the repo root with ``PYTHONPATH=. .venv/bin/python benchmarks/explain.py``
(``--records N``,
default 100000; ``--runs N``, default 5, the median is printed; ``--before-max N``,
default 20000: the largest store the former full scan is timed on; ``--root PATH``, default
the temp folder: where the store is made, e.g. ``/dev/shm`` where the disk is shared).

The store holds N outputs of 100 DAGs of 100 tasks each, one generation each, written
directly in the store's layout (``objects/<id>/0/record.json`` and ``data/``; N sealed
commits would take minutes). The task explained, ``t0042`` of ``d07``, has 10 earlier
outputs (its spec changed 10 times); its current spec has none. Then:

- floor: reading the records of those 10 outputs, nothing else;
- explain, warm index: ``history.explain`` with the task index up to date (one listing
  of ``objects/``, the index file read, the task's records read and compared);
- explain, one output committed since: the same after a new output appeared (timed
  after the others, one new output before each run): the index lists ``objects/``
  again and reads the new record;
- index, first use: the index built from every record (once per store, then refreshed
  with what was committed since), timed once;
- before: what explain did before the index, every record of the store read and
  matched by task name, timed once up to ``--before-max`` records.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
from pathlib import Path

import bencode
from report import timed

from a_la_mode import Dag, load
from a_la_mode.ids import id_of
from alamode_airflow.history import explain, records
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import OutputStore
from alamode_airflow.task_index import INDEX, task_index

DAG, TASK, VERSIONS = "d07", "t0042", 10


def version(n: int):
    dag = Dag({"dag_id": DAG})
    dag.task(TASK, {"command": f"clean.py --version {n}"})
    return load(dag.bencode())[TASK]


def record(output_id: str, dag_id: str, task: str, preimage: bytes, day: int) -> str:
    return SuccessRecord(
        output_id=output_id,
        dag_id=dag_id,
        task=task,
        run_id=f"run-{day}",
        try_number=1,
        start="2026-01-01T00:00:00+00:00",
        end=f"2026-01-01T00:00:{day % 60:02d}+00:00",
        duration_s=1.0,
        command="clean.py",
        image=None,
        sha=None,
        inputs={},
        preimage_b64=base64.b64encode(preimage).decode(),
        host="bench",
        manifest=(),
    ).dumps()


def write(root: Path, output_id: str, text: str) -> None:
    folder = root / "objects" / output_id / "0"
    (folder / "data").mkdir(parents=True)
    (folder / "record.json").write_text(text)


def fake(i: int) -> tuple[str, str]:
    """Output ``i`` of another DAG (``e..``), whose tasks have the explained one's names."""
    preimage = bencode.encode({"command": f"echo {i}", "inputs": {}})
    output_id = id_of(preimage)
    dag_id, task = f"e{i % 100:02d}", f"t{i // 100 % 100:04d}"
    return output_id, record(output_id, dag_id, task, preimage, i)


def fill(root: Path, n: int) -> None:
    for v in range(VERSIONS):
        task = version(v)
        write(root, task.output, record(task.output, DAG, TASK, task.preimage(), v))
    for i in range(n - VERSIONS):
        write(root, *fake(i))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before-max", type=int, default=20000)
    parser.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    dag = Dag({"dag_id": DAG})
    dag.task(TASK, {"command": "clean.py --version new"})
    pipeline = load(dag.bencode())
    mine = [version(v).output for v in range(VERSIONS)]
    with tempfile.TemporaryDirectory(prefix="alamode-bench-explain-", dir=args.root) as root:
        fill(Path(root) / "store", args.records)
        store = OutputStore(str(Path(root) / "store"))

        def floor():
            assert all(store.history(output_id)[0].record for output_id in mine)

        def warm():
            assert explain(pipeline, TASK, store).nearest.output_id in mine

        before = None
        if args.records <= args.before_max:
            before = timed(lambda: [r for r in records(store) if r.task == TASK])
        cold = timed(lambda: task_index(store))
        size = store.root.joinpath(*INDEX).stat().st_size
        times: dict[str, list[float]] = {"floor": [], "warm": [], "since": []}
        for run in range(args.runs):
            order = [("floor", floor), ("warm", warm)]
            for label, step in order if run % 2 else reversed(order):
                times[label].append(timed(step))
        for run in range(args.runs):
            write(Path(root) / "store", *fake(args.records + run))
            times["since"].append(timed(warm))
    base, ours, since = (statistics.median(times[k]) for k in ("floor", "warm", "since"))
    print(f"explain, a store of {args.records} records, local root, median of {args.runs} runs")
    print(f"  floor (the task's {VERSIONS} records read)        {base * 1000:9.1f} ms")
    rows = (("explain, warm index", ours), ("explain, one output committed since", since))
    for label, value in rows:
        print(f"  {label:<40} {value * 1000:9.1f} ms  ({value / base:.1f}x)")
    print(f"  index, first use (every record, once)    {cold * 1000:9.1f} ms  ({size} bytes)")
    if before is None:
        print(f"  before (every record, each time): not timed above {args.before_max} records")
    else:
        print(f"  before (every record, each time)         {before * 1000:9.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
