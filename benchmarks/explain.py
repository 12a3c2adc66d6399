"""``alamode explain`` on a large store: does it read only the task's own records?

Run it from the repo root with ``PYTHONPATH=. .venv/bin/python benchmarks/explain.py``
(``--records N``, default 100000; ``--runs N``, default 5, the median is printed;
``--before-max N``, default 100000: the largest store the former full scan is timed on;
``--root PATH``, default the temp folder: where the store is made, e.g. ``/dev/shm``
where the disk is shared; ``--s3-records N``, default 2000, 0 to skip: the S3 store).

The store holds N outputs of 100 DAGs of 100 tasks each, one generation each, written
directly in the store's layout with the task marker a commit writes
(``objects/<id>/0/record.json``, ``data/`` and ``tasks/<task>/<dag>/<id>.0``; N sealed
commits would take minutes). The task explained, ``t0042`` of ``d07``, has 10 earlier
outputs (its spec changed 10 times); its current spec has none. Then, on a local root:

- floor: reading and parsing the records of those 10 outputs, nothing else;
- explain: ``history.explain`` (the task's output looked up, its markers listed, their
  records read and compared);
- explain, one output committed since: the same after a new output of the task was
  committed (one before each run);
- before: what explain did before the task index, every record of the store read and
  matched by task name, timed once up to ``--before-max`` records;
- alamode index: the markers of every record written afresh (what a store filled
  before markers needs, once), timed once.

On S3 (moto's server on loopback), a store of ``--s3-records`` outputs of other DAGs
and the task's 10, filled the same way: the requests one explain sends, counted as the
client sends them (target: at most 20), beside those of the former full scan.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bencode
from report import timed

from a_la_mode import Dag, load
from a_la_mode.ids import id_of
from alamode_airflow.history import explain, records
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import OutputStore
from alamode_airflow.task_index import TASKS, marker, rebuild

DAG, TASK, VERSIONS = "d07", "t0042", 10
CONN_ID = "alamode_bench_explain_s3"


def version(n: int):
    dag = Dag({"dag_id": DAG})
    dag.task(TASK, {"command": f"clean.py --version {n}"})
    return load(dag.bencode())[TASK]


def record(output_id: str, dag_id: str, task: str, preimage: bytes, day: int) -> SuccessRecord:
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
    )


def write(root: Path, made: SuccessRecord) -> None:
    """A committed output as a local commit leaves it, with its task marker."""
    folder = root / "objects" / made.output_id / "0"
    (folder / "data").mkdir(parents=True)
    (folder / "record.json").write_text(made.dumps())
    (root / marker(made)).parent.mkdir(parents=True, exist_ok=True)
    (root / marker(made)).touch()


def mine() -> list[SuccessRecord]:
    """The explained task's earlier outputs."""
    tasks = [version(v) for v in range(VERSIONS)]
    return [record(t.output, DAG, TASK, t.preimage(), v) for v, t in enumerate(tasks)]


def fake(i: int) -> SuccessRecord:
    """Output ``i`` of another DAG (``e..``), whose tasks have the explained one's names."""
    preimage = bencode.encode({"command": f"echo {i}", "inputs": {}})
    output_id = id_of(preimage)
    return record(output_id, f"e{i % 100:02d}", f"t{i // 100 % 100:04d}", preimage, i)


def fill(root: Path, n: int) -> None:
    for made in mine():
        write(root, made)
    for i in range(n - VERSIONS):
        write(root, fake(i))


def pipeline():
    dag = Dag({"dag_id": DAG})
    dag.task(TASK, {"command": "clean.py --version new"})
    return load(dag.bencode())


def local(args) -> None:
    ours = [made.output_id for made in mine()]
    with tempfile.TemporaryDirectory(prefix="alamode-bench-explain-", dir=args.root) as root:
        fill(Path(root) / "store", args.records)
        store = OutputStore(str(Path(root) / "store"))

        def floor():
            read = store.backend.read_record
            assert all(SuccessRecord.loads(read(output_id, 0)) for output_id in ours)

        def warm():
            assert explain(pipeline(), TASK, store).nearest.dag_id == DAG

        times: dict[str, list[float]] = {"floor": [], "warm": [], "since": []}
        for run in range(args.runs):
            order = [("floor", floor), ("warm", warm)]
            for label, step in order if run % 2 else reversed(order):
                times[label].append(timed(step))
        for run in range(args.runs):
            new = version(1000 + run)
            write(Path(root) / "store", record(new.output, DAG, TASK, new.preimage(), run))
            times["since"].append(timed(warm))
        before = None
        if args.records <= args.before_max:
            before = timed(lambda: [r for r in records(store) if r.task == TASK])
        shutil.rmtree(Path(root) / "store" / TASKS)  # as a store filled before markers
        index = timed(lambda: rebuild(store))
        assert explain(pipeline(), TASK, store).nearest.dag_id == DAG
    base, warm_s, since = (statistics.median(times[k]) for k in ("floor", "warm", "since"))
    print(f"explain, a store of {args.records} records, local root, median of {args.runs} runs")
    print(f"  floor (the task's {VERSIONS} records read)        {base * 1000:9.1f} ms")
    rows = (("explain (task markers)", warm_s), ("explain, one output committed since", since))
    for label, value in rows:
        print(f"  {label:<40} {value * 1000:9.1f} ms  ({value / base:.1f}x)")
    if before is None:
        print(f"  before (every record, each time): not timed above {args.before_max} records")
    else:
        print(f"  before (every record, each time)         {before * 1000:9.1f} ms")
    print(f"  alamode index (every record, once)       {index * 1000:9.1f} ms")


def s3(args) -> None:
    """Requests of one explain on S3, and of the former full scan, on moto."""
    import os

    from loopback.servers import s3_server

    with (
        tempfile.TemporaryDirectory(prefix="alamode-bench-explain-s3-") as logs,
        s3_server(Path(logs)) as server,
    ):
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = server.connection()
        store = OutputStore(f"s3://{server.bucket}/store", conn_id=CONN_ID)
        client = server.client()

        def upload(made: SuccessRecord) -> None:
            key = f"store/objects/{made.output_id}/0/record.json"
            client.put_object(Bucket=server.bucket, Key=key, Body=made.dumps().encode())
            client.put_object(Bucket=server.bucket, Key=f"store/{marker(made)}", Body=b"")

        made = mine() + [fake(i) for i in range(args.s3_records)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, made))
        sent = counted(store)
        took = timed(lambda: explain(pipeline(), TASK, store))
        ours = len(sent)
        sent.clear()
        before = timed(lambda: [r for r in records(store) if r.task == TASK])
    print(f"explain on S3 (moto on loopback), a store of {len(made)} records")
    print(f"  explain (task markers)    {ours:6d} requests  {took * 1000:8.1f} ms")
    print(f"  before (every record)     {len(sent):6d} requests  {before * 1000:8.1f} ms")


def counted(store: OutputStore) -> list[str]:
    """The requests ``store``'s client sends from now on."""
    sent: list[str] = []
    fs = store.root.fs
    fs.connect()
    fs.s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before-max", type=int, default=100000)
    parser.add_argument("--root", default=None)
    parser.add_argument("--s3-records", type=int, default=2000)
    args = parser.parse_args(argv)
    local(args)
    if args.s3_records:
        s3(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
