"""The plan of a fully cached DAG on an S3 root: requests per output and wall time.

Run it with ``PYTHONPATH=. .venv/bin/python benchmarks/s3_plan.py`` from the repo root (``--tasks``
sizes, default ``1000 10000``; ``--latency-ms``, default 20; ``--sample N``, default
200: the outputs the sequential baseline looks up before its time is scaled to all).

moto's S3 server runs on loopback behind a proxy that holds every request
``--latency-ms`` before passing it on (a round trip to a real S3 region) and counts
them. For each size, a bucket of its own is filled as the engine fills it (a layered
random pipeline, every output committed once with its receipt, each record naming the
generation and digest of every input), then:

- baseline: the lookup before the plan was batched, one output after another (list
  the generations, open the record: a HEAD and a GET, check the data: a HEAD), timed
  on ``--sample`` outputs and scaled to all;
- plan: ``currency.assess`` as ``plan.py`` calls it, on a machine that keeps no
  record: the outputs' folders listed together in pages of ``objects/``, each output
  found current by its receipt (``receipts.py``), no record read;
- records: the same plan reading every record, many at once (what outputs committed
  without a receipt cost: one GET each);
- local: the same plan on a local root filled with the same outputs.

Target: at most 2 requests per output, and 10,000 outputs within 30 s at 20 ms.
moto answers a listing by scanning every key of its bucket (S3's does not), and costs a
few milliseconds of CPU per request: ``moto alone`` is the plan with no latency added,
what the server itself costs in that figure; ``its cpu`` is the CPU time of the plan's
own process (signing and parsing requests, checking receipts).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plan import pipeline, record_of

from alamode_airflow.currency import assess
from alamode_airflow.manifests import manifest
from alamode_airflow.receipts import Receipt
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import RECORD, OutputStore
from loopback.servers import S3Server, s3_server

DAG_ID = "s3_plan_bench"

CONN_ID = "alamode_bench_s3"
FILLERS = 16


class LatencyProxy:
    """A TCP proxy on loopback that holds each HTTP request ``delay`` seconds before
    passing it on, and counts them. A request is what the client sends after the
    server's last answer (clients here never pipeline). It runs in a process of its
    own, as a real network's round trips cost the client no CPU: in the plan's process
    its relaying would be counted as the plan's own time. ``delay`` and ``requests``
    are shared with it."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        context = multiprocessing.get_context("spawn")  # no threads of ours copied
        self._delay, self._requests = context.Value("d", delay), context.Value("q", 0)
        ready, self._port = context.Event(), context.Value("i", 0)
        self.process = context.Process(
            target=_proxy_main,
            args=(upstream_port, self._delay, self._requests, self._port, ready),
            daemon=True,
        )
        self._ready = ready

    @property
    def delay(self) -> float:
        return self._delay.value

    @delay.setter
    def delay(self, value: float) -> None:
        self._delay.value = value

    @property
    def requests(self) -> int:
        return self._requests.value

    def __enter__(self) -> LatencyProxy:
        self.process.start()
        if not self._ready.wait(60):
            raise RuntimeError("the latency proxy did not start")
        self.port = self._port.value
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(5)


def _proxy_main(upstream_port: int, delay, requests, port, ready) -> None:
    """The proxy's process: one event loop, a connection to moto per client's."""

    async def serve(client_r, client_w) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        answered = [True]  # the next bytes from the client start a request

        async def forward() -> None:
            while data := await client_r.read(65536):
                if answered[0]:
                    answered[0] = False
                    with requests.get_lock():
                        requests.value += 1
                    await asyncio.sleep(delay.value)
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def answer() -> None:
            while data := await server_r.read(65536):
                answered[0] = True
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        await asyncio.gather(forward(), answer(), return_exceptions=True)

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
        port.value = server.sockets[0].getsockname()[1]
        ready.set()
        await server.serve_forever()

    asyncio.run(main())


def fill_s3(server: S3Server, bucket: str, store: OutputStore, tasks) -> None:
    """Every output as ``ObjectBackend.commit`` leaves it (its data under an attempt
    prefix, then its record), uploaded straight to moto, many at once."""
    import boto3
    from botocore.config import Config

    client = boto3.client(  # thread-safe; a connection for each thread
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(max_pool_connections=FILLERS),
    )
    base = store.root.path.split("/", 1)[1]

    def commit(task) -> None:
        staging = store.stage(task.output)
        (staging / "data" / "out.txt").write_text(task.name)
        record = record_of(
            task,
            tasks,
            manifest(staging / "data"),
            dag_id=DAG_ID,
            data_path=store.data_path(staging),
            digests=True,
        )
        key = f"{base}/objects/{task.output}/0"
        body = (staging / "data" / "out.txt").read_bytes()
        client.put_object(Bucket=bucket, Key=f"{key}/{record.data_path}/out.txt", Body=body)
        text = record.dumps().encode()
        client.put_object(Bucket=bucket, Key=f"{key}/{RECORD}", Body=text)
        client.put_object(Bucket=bucket, Key=f"{key}/{Receipt.of(record, text).name}", Body=b"")
        store.discard(staging)

    with ThreadPoolExecutor(FILLERS) as pool:
        list(pool.map(commit, tasks))


def fill_local(store: OutputStore, tasks) -> None:
    """Every output as ``LocalBackend.commit`` leaves it (its data, then its record,
    in the generation's folder), without the flushes that make a commit durable."""
    for task in tasks:
        folder = Path(store.object_dir(task.output, 0).path)
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "out.txt").write_text(task.name)
        record = record_of(task, tasks, manifest(folder / "data"), dag_id=DAG_ID, digests=True)
        (folder / RECORD).write_text(record.dumps())


def sequential_lookup(store: OutputStore, output_id: str) -> bool:
    """The lookup of a committed output as it was before lookups were batched: list
    the generations, open the newest record (a HEAD, then a GET), check its data."""
    from alamode_airflow.listing import child_names

    folder = store.object_dir(output_id)
    newest = max(int(name) for name in child_names(folder) if name.isdigit())
    record = SuccessRecord.loads((folder / str(newest) / RECORD).read_text())
    return (store.data_of(record) / record.manifest[0].path).exists()


def plan_pass(store: OutputStore, tasks, pack: str | None = None, by_receipt: bool = True) -> None:
    """The plan task's pass (``plan.py``); without ``by_receipt``, every record is read."""
    outputs = {task.name: task.output for task in tasks}
    inputs = {task.name: list(task.inputs) for task in tasks}
    look_all = functools.partial(store.lookup_all, warn=print, pack=pack, by_receipt=by_receipt)
    verdicts = assess(outputs, inputs, look_all, with_records=store.with_records)
    assert all(v.current for v in verdicts.values()), "a cached output was not current"


def timed(step) -> float:
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def measure(server: S3Server, proxy: LatencyProxy, n: int, sample: int) -> dict[str, float]:
    tasks = pipeline(n)
    bucket = f"plan-{n}"
    server.client().create_bucket(Bucket=bucket)
    store = OutputStore(f"s3://{bucket}/store", conn_id=CONN_ID)
    fill_s3(server, bucket, store, tasks)
    figures: dict[str, float] = {}
    some = [task.output for task in list(tasks)[:sample]]
    before = proxy.requests
    figures["baseline_s"] = (
        timed(lambda: [sequential_lookup(store, o) for o in some]) * n / len(some)
    )
    figures["baseline_requests"] = (proxy.requests - before) / len(some)
    os.environ["AIRFLOW__ALAMODE__RECORD_CACHE"] = "none"  # every record read
    delay, proxy.delay = proxy.delay, 0.0
    figures["moto_s"] = timed(lambda: plan_pass(OutputStore(store.url, CONN_ID), tasks))
    proxy.delay, before, cpu = delay, proxy.requests, time.process_time()
    figures["plan_s"] = timed(lambda: plan_pass(OutputStore(store.url, CONN_ID), tasks))
    figures["cpu_s"] = time.process_time() - cpu  # this process's, every thread's
    figures["plan_requests"] = (proxy.requests - before) / n
    before = proxy.requests
    reading_records = functools.partial(
        plan_pass, OutputStore(store.url, CONN_ID), tasks, by_receipt=False
    )
    figures["records_s"] = timed(reading_records)
    figures["records_requests"] = (proxy.requests - before) / n
    with tempfile.TemporaryDirectory(prefix="alamode-bench-s3-plan-") as root:
        local = OutputStore(str(Path(root) / "store"))
        fill_local(local, tasks)
        plan_pass(local, tasks)  # warm, as the S3 figures are
        figures["local_s"] = timed(lambda: plan_pass(local, tasks))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args(argv)
    # Stopped, still stop the server: its context exits on SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with (
        tempfile.TemporaryDirectory(prefix="alamode-bench-s3-") as logs,
        s3_server(Path(logs)) as server,
    ):
        port = int(server.endpoint.rsplit(":", 1)[1])
        with LatencyProxy(port, args.latency_ms / 1000) as proxy:
            proxied = S3Server(f"http://127.0.0.1:{proxy.port}", server.bucket)
            os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = proxied.connection()
            print(f"fully cached plan on S3 (moto + {args.latency_ms:g} ms per request)")
            print(
                f"{'tasks':>7} {'req/out':>8} {'plan s':>8} {'its cpu s':>10} {'moto alone s':>13} "
                f"{'records req/out':>16} {'records s':>10} "
                f"{'baseline req/out':>17} {'baseline s':>11} {'local s':>8}"
            )
            for n in args.tasks:
                f = measure(server, proxy, n, min(args.sample, n))
                print(
                    f"{n:>7} {f['plan_requests']:>8.3f} {f['plan_s']:>8.2f} {f['cpu_s']:>10.2f} "
                    f"{f['moto_s']:>13.2f} {f['records_requests']:>16.2f} {f['records_s']:>10.2f} "
                    f"{f['baseline_requests']:>17.2f} {f['baseline_s']:>10.1f}* "
                    f"{f['local_s']:>8.2f}",
                    flush=True,
                )
    print(f"* one output after another, timed on {args.sample} outputs and scaled to all")
    print("records: the same plan reading each record (outputs committed with no receipt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
