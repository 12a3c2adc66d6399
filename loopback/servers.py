"""The servers a cluster needs, started from Debian and PyPI packages on loopback:
PostgreSQL (Airflow's database), Redis (Celery's broker) and an S3-compatible server
(moto) for outputs. Each runs in its own process group and folder, and stops with its
context, killed if it will not stop."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from a_la_mode import AlamodeError
from loopback.local import free_port, stop, wait_for_port


class ServerError(AlamodeError):
    """A server could not be started (not installed, or it exited)."""


def _binary(name: str, *patterns: str, package: str | None = None) -> str:
    found = shutil.which(name) or next(
        (hit for pattern in patterns for hit in sorted(glob.glob(pattern))), None
    )
    if not found:
        raise ServerError(f"{name} not found (Debian: apt-get install {package or name})")
    return found


@contextmanager
def _process(args: list[str], log: Path, port: int, **popen) -> Iterator[subprocess.Popen]:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen
        )
    try:
        try:
            wait_for_port(port, [proc], timeout=60)
        except RuntimeError as exc:
            raise ServerError(
                f"{args[0]} did not start: {exc}\n{log.read_text()[-2000:]}"
            ) from None
        yield proc
    finally:
        stop([proc])


@dataclass(frozen=True)
class Postgres:
    port: int
    database: str = "airflow"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"


@contextmanager
def postgres(log_dir: Path) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster (trust auth, loopback only) with an empty database.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, in
    a folder of its own outside the caller's (possibly private) temp folders."""
    bindir = (
        Path(_binary("initdb", "/usr/lib/postgresql/*/bin/initdb", package="postgresql"))
        .resolve()
        .parent
    )
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="alamode-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run(
            [*as_user, bindir / "initdb", "-A", "trust", "-U", "postgres", "-D", data],
            check=True,
            capture_output=True,
        )
        args = [*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
        args += ["-h", "127.0.0.1", "-k", str(folder), "-c", "max_connections=300"]
        args += ["-c", "fsync=off"]  # a throwaway cluster: durability buys nothing
        with _process(args, log_dir / "postgres.log", port):
            server = Postgres(port)
            psql = [bindir / "psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
            subprocess.run(
                [*psql, "-c", f"create database {server.database}"], check=True, capture_output=True
            )
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis(log_dir: Path) -> Iterator[str]:
    """A Redis server without persistence; yields its URL."""
    port = free_port()
    args = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(log_dir)]
    with _process(args, log_dir / "redis.log", port):
        yield f"redis://127.0.0.1:{port}/0"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    access_key: str = "alamode"
    secret_key: str = "alamode-secret"

    def connection(self) -> str:
        """An Airflow ``aws`` connection to this server, as AIRFLOW_CONN_<ID> JSON."""
        extra = {"endpoint_url": self.endpoint, "region_name": "us-east-1"}
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": extra,
            }
        )

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2")
        found = pages.paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in found for item in page.get("Contents", ())]


@contextmanager
def s3_server(log_dir: Path, bucket: str = "alamode-outputs") -> Iterator[S3Server]:
    """moto's S3 server (the PyPI package's server mode) with one empty bucket."""
    port = free_port()
    moto = str(Path(sys.executable).parent / "moto_server")
    with _process([moto, "-H", "127.0.0.1", "-p", str(port)], log_dir / "s3.log", port):
        server = S3Server(f"http://127.0.0.1:{port}", bucket)
        server.client().create_bucket(Bucket=bucket)  # it listens, so it answers
        yield server
