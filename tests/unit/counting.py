"""Counting the requests an S3 client sends: what the object-store walks cost."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def requests_sent(fs) -> Iterator[list[tuple[str, str]]]:
    """(method, URL) of every request the S3 filesystem ``fs``'s client sends meanwhile,
    each counted as botocore sends it."""
    requests: list[tuple[str, str]] = []
    fs.connect()

    def count(request, **_) -> None:
        requests.append((request.method, request.url))

    fs.s3.meta.events.register("before-send.s3", count, unique_id="alamode-count")
    try:
        yield requests
    finally:
        fs.s3.meta.events.unregister("before-send.s3", unique_id="alamode-count")
