"""The cost of a durable commit on this machine's disk: sealed commits against today's.

Run it with ``PYTHONPATH=. .venv/bin/python benchmarks/commit.py`` from the repo root. Options:
``--runs N`` (default 7; the median is printed), ``--root PATH`` (a fresh store is made
inside it and deleted after; default the temp folder: use the disk the store uses).

One commit is what a worker does after the command exits: stage an attempt holding N
files (written by the benchmark, as a command would), take its manifest, write the
record, rename the staging folder into ``objects/``. Three shapes: 1 file of 1 KiB,
20 files of 64 KiB, 1 file of 64 MiB. Three ways, in a different order each run:

- baseline: the commit without durability (the record written, the rename; nothing
  flushed: the page cache writes the bytes back whenever it likes);
- sealed: what ``OutputStore.commit`` does on a local root: the record written,
  ``seal`` (every file and folder fsynced, made read-only), the rename, then
  ``sync_dir`` on the folders that received it;
- sealed 1-by-1: the same with ``seal(flushers=1)``, fsyncing one file after another
  (each waits for its own journal commit, where concurrent ones share one).

``os.sync()`` runs before every timed commit, so no run pays for the writeback of the
one before. The overhead is sealed minus baseline: what durability costs per commit.
Other processes writing to the same disk make fsync slower (they share its journal).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from report import table

from alamode_airflow.manifests import manifest, remove, seal, sync_dir
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import RECORD, OutputStore

KIB, MIB = 1024, 1024 * 1024
SHAPES = (("1 x 1 KiB", 1, KIB), ("20 x 64 KiB", 20, 64 * KIB), ("1 x 64 MiB", 1, 64 * MIB))
WAYS = ("base", "sealed", "1-by-1")


def record_for(preimage: bytes, data: Path) -> SuccessRecord:
    return SuccessRecord(
        output_id=hashlib.sha256(preimage).hexdigest(),
        dag_id="bench",
        task="commit",
        run_id="bench",
        try_number=1,
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:01+00:00",
        duration_s=1.0,
        command="bench",
        image=None,
        sha=None,
        inputs={},
        preimage_b64=base64.b64encode(preimage).decode(),
        host="bench",
        manifest=manifest(data),
    )


def unsealed_commit(store: OutputStore, staging: Path, record: SuccessRecord) -> None:
    """The commit as it was before sealing: record written, rename, nothing flushed."""
    (staging / RECORD).write_text(record.dumps())
    target = Path(store.object_dir(record.output_id, record.generation).path)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, target)


def sealed_commit(store: OutputStore, staging: Path, record: SuccessRecord, flushers: int) -> float:
    """The durable protocol: record written, everything flushed and sealed, rename,
    then the receiving folders flushed. Returns the seconds spent flushing."""
    (staging / RECORD).write_text(record.dumps())
    target = Path(store.object_dir(record.output_id, record.generation).path)
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seal(staging, flushers)
    t1 = time.perf_counter()
    os.rename(staging, target)
    t2 = time.perf_counter()
    sync_dir(target.parent)
    if created:  # objects/<id> is new: its entry in objects/ must reach the disk too
        sync_dir(target.parent.parent)
    return (t1 - t0) + (time.perf_counter() - t2)


def one_commit(store: OutputStore, blobs: list[bytes], key: bytes, way: str) -> dict:
    """Time one commit of ``blobs``, from staging to committed: seconds in all, and in
    flushing."""
    os.sync()
    t0 = time.perf_counter()
    output_id = hashlib.sha256(key).hexdigest()
    staging = store.stage(output_id)
    for i, blob in enumerate(blobs):
        (staging / "data" / f"part-{i:03d}.bin").write_bytes(blob)
    record = record_for(key, staging / "data")
    flush = 0.0
    if way == "base":
        unsealed_commit(store, staging, record)
    else:
        flush = sealed_commit(store, staging, record, 1 if way == "1-by-1" else 16)
    total = time.perf_counter() - t0
    remove(Path(store.object_dir(output_id).path))
    return {"total": total, "flush": flush}


def bench(root: Path, runs: int) -> list[dict]:
    store = OutputStore(str(root))
    rows = []
    for label, count, size in SHAPES:
        blobs = [os.urandom(size) for _ in range(count)]
        times: dict[str, list[dict]] = {way: [] for way in WAYS}
        for run in range(runs):
            # A different order each run, so no way always follows the same one.
            for way in WAYS[run % 3 :] + WAYS[: run % 3]:
                key = f"{label} {run} {way} {time.time_ns()}".encode()
                times[way].append(one_commit(store, blobs, key, way))
        row: dict = {"shape": label}
        for way, measured in times.items():
            row[way] = statistics.median(t["total"] for t in measured) * 1000
            row[f"{way} flush"] = statistics.median(t["flush"] for t in measured) * 1000
        rows.append(row)
    return rows


def report(rows: list[dict], runs: int) -> str:
    header = ["shape", "baseline ms", "sealed ms", "overhead ms", "ratio", "in seal+sync ms",
              "1-by-1 ms", "1-by-1 overhead ms"]  # fmt: skip
    body = [
        [
            r["shape"], f"{r['base']:.2f}", f"{r['sealed']:.2f}",
            f"{r['sealed'] - r['base']:+.2f}", f"{r['sealed'] / r['base']:.2f}x",
            f"{r['sealed flush']:.2f}", f"{r['1-by-1']:.2f}", f"{r['1-by-1'] - r['base']:+.2f}",
        ]
        for r in rows
    ]  # fmt: skip
    return (
        f"One commit (stage, write, manifest, record, rename), median of {runs} runs;\n"
        "baseline = commit without fsync, sealed = seal + rename + sync_dir (OutputStore.commit),\n"
        "1-by-1 = sealed with one fsync after another\n" + table(header, body)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="alamode-bench-commit-", dir=args.root))
    try:
        print(f"store {root} (Linux {os.uname().release})")
        print(report(bench(root, args.runs), args.runs))
    finally:
        remove(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
