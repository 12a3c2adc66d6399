"""Airflow as a cluster on loopback: PostgreSQL, Redis, an S3 server for outputs, and
api-server, scheduler, dag-processor and triggerer with the CeleryExecutor and Celery
workers, every one a separate process, as docker-compose.yaml deploys them."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from loopback.airflow_cli import AirflowHome
from loopback.local import api_env, free_port, start, stop, wait_for_port
from loopback.servers import S3Server, postgres, redis, s3_server

STORE_CONN_ID = "alamode_store"


@dataclass
class Cluster:
    home: AirflowHome
    port: int
    s3: S3Server
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_prefix(self) -> str:
        """Where outputs go in the bucket."""
        return "store/"

    def start_worker(
        self, name: str, concurrency: int = 4, queues: tuple[str, ...] | None = None
    ) -> None:
        """A Celery worker ``name``: its own hostname and log-server port, serving
        ``queues`` (by default Airflow's default queue only). Every command it runs
        finds ``name`` in ``CLUSTER_WORKER``: all workers share one host name here."""
        args = ["celery", "worker", "--concurrency", str(concurrency)]
        args += ["--celery-hostname", f"{name}@%h"]
        if queues:
            args += ["--queues", ",".join(queues)]
        env = {
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "CLUSTER_WORKER": name,
        }
        self.workers[name] = start(self.home, f"worker-{name}", args, env)

    def kill_worker_running(self, pid: int) -> str:
        """SIGKILL, as if its machine died, the worker that runs process ``pid``: the
        worker and every process under it (task processes have process groups of
        their own). Returns the worker's name."""
        ancestors = {p.pid for p in psutil.Process(pid).parents()}
        for name, proc in self.workers.items():
            if proc.pid in ancestors:
                tree = psutil.Process(proc.pid)
                for victim in [tree, *tree.children(recursive=True)]:
                    with suppress(psutil.NoSuchProcess):
                        victim.kill()
                proc.wait(30)
                return name
        raise LookupError(f"pid {pid} runs under no worker of this cluster")


def cluster_env(db_url: str, broker: str, s3: S3Server, port: int) -> tuple[tuple[str, str], ...]:
    return (
        *api_env(port),
        ("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor"),
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", db_url),
        ("AIRFLOW__CELERY__BROKER_URL", broker),
        ("AIRFLOW__CELERY__RESULT_BACKEND", "db+" + db_url),
        ("AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "5"),
        # A task whose worker died is failed (and retried) after 30 s without heartbeat.
        ("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "30"),
        ("AIRFLOW__ALAMODE__STORAGE_ROOT", f"s3://{s3.bucket}/store"),
        ("AIRFLOW__ALAMODE__STORAGE_CONN_ID", STORE_CONN_ID),
        (f"AIRFLOW_CONN_{STORE_CONN_ID.upper()}", s3.connection()),
    )


@contextmanager
def cluster(home: Path, dags: Path, workers: int = 2) -> Iterator[Cluster]:
    """The whole deployment, migrated and listening; everything stops on exit."""
    home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        db = stack.enter_context(postgres(home))
        broker = stack.enter_context(redis(home))
        s3 = stack.enter_context(s3_server(home))
        port = free_port()
        airflow = AirflowHome(home, dags, cluster_env(db.url, broker, s3, port))
        airflow.migrate()
        running = Cluster(airflow, port, s3)
        services = [
            start(airflow, "api-server", ["api-server", "--port", str(port)]),
            start(airflow, "scheduler", ["scheduler"]),
            start(airflow, "dag-processor", ["dag-processor"]),
            start(airflow, "triggerer", ["triggerer"]),
        ]
        stack.callback(stop, services)
        for n in range(1, workers + 1):
            running.start_worker(f"worker{n}")
        stack.callback(lambda: stop(list(running.workers.values())))
        wait_for_port(port, services)
        yield running


def main() -> int:
    """``make cluster``: the deployment, on the repository's dags, until Ctrl-C."""
    import time

    repo = Path(__file__).resolve().parents[2]
    # `kill` as well as Ctrl-C stops every service: their process groups outlive us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with cluster(repo / ".cluster", repo / "dags") as running:
        print(f"Airflow UI and REST API: {running.url}  (logs in {running.home.home})")
        print(f"outputs: {running.s3.endpoint}/{running.s3.bucket}/store  (Ctrl-C stops)")
        with suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
