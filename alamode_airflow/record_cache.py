"""Success records read from an object store, kept on this machine, checked against
the store's own digest of each record before they are used.

A record, once created, never changes, and a listing of its output's folder brings
back each object's ETag, which for an object uploaded in one piece (records are) is
the MD5 of its bytes. So a record read once need not be read again: the copy kept
here is used only when its MD5 is the ETag the listing just returned for that record.
A copy that differs in any way (the store's record was replaced by hand, the file
here was damaged or edited) is not used: the record is read from the store and the
copy replaced. Where the ETag is not an MD5 (multipart uploads, some server-side
encryption), nothing is kept and every read goes to the store.

This is what makes a fully cached plan on an object store cost its listing pages: on
a machine that planned the DAG before, or whose tasks committed the records (a task
keeps the record it commits), no record is read again. The folder is
``[alamode] record_cache`` (default ``$AIRFLOW_HOME/alamode-records``; ``none`` keeps
nothing). A file per record generation looked up here, about a kilobyte each; delete
any of it at any time, the next lookup reads the record again.

The folder holds what was looked up lately, not every record ever read: a copy is
deleted ``KEEP_S`` (30 days) after it was written, by the first cache made on the
machine once a day has passed since the last sweep (``sweep``; a stamp file says
when). A copy still in use is read again once a month; the folder stays about the size
of the records its DAGs looked up in a month.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_MD5 = re.compile(r'^"?([0-9a-f]{32})"?$')
#: The pack's format: a pack of another is neither used nor written over.
PACK_FORMAT = 1
#: How long a kept copy lives after it was written.
KEEP_S = 30 * 86400
#: How often the folder is swept of older copies.
SWEEP_EVERY_S = 86400
STAMP = ".swept"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_of(etag: str | None) -> str | None:
    """The MD5 an ETag states, or None when it is not one (``"<md5>-<parts>"``)."""
    match = _MD5.match(etag or "")
    return match.group(1) if match else None


class RecordCache:
    """Record texts by (store, output, generation), each served only against an MD5."""

    def __init__(self, folder: Path | None, store_url: str) -> None:
        self.folder, self.store_url = folder, store_url
        # Texts offered by a pack (``packed``), by (output, generation), checked as the
        # folder's are; and, while a pack is being made, the texts served.
        self.offered: dict[tuple[str, int], bytes] = {}
        self.served: dict[tuple[str, int], str] | None = None

    @classmethod
    def configured(cls, store_url: str) -> RecordCache:
        from alamode_airflow import settings

        value = settings.get("record_cache")
        if value is not None and value.lower() == "none":
            return cls(None, store_url)
        default = os.path.join(settings.airflow_home(), "alamode-records")
        folder = Path(value or default)
        sweep(folder)
        return cls(folder, store_url)

    def _path(self, output_id: str, generation: int) -> Path:
        assert self.folder is not None
        name = hashlib.sha256(f"{self.store_url}\0{output_id}\0{generation}".encode()).hexdigest()
        return self.folder / name[:2] / name

    def get(self, output_id: str, generation: int, md5: str | None) -> str | None:
        """The kept text of that record (offered by a pack, or in the folder) if its
        MD5 is ``md5``; else None."""
        if md5 is None:
            return None
        data = self.offered.get((output_id, generation))
        if data is None and self.folder is not None:
            with contextlib.suppress(OSError):
                data = self._path(output_id, generation).read_bytes()
        if data is None or _md5(data) != md5:
            return None
        return data.decode()

    def note(self, output_id: str, generation: int, md5: str | None, text: str) -> None:
        """A text served for that record, if its MD5 is the store's ``md5`` (not where
        the ETag is no MD5 of it: a pack of those would never serve): what the pack
        being made holds."""
        if self.served is not None and md5 == _md5(text.encode()):
            self.served[(output_id, generation)] = text

    def keep(self, output_id: str, generation: int, text: str) -> None:
        """Keep the text of a record this machine just committed: the next plan here
        reads no record its tasks wrote. Checked like any copy, against the ETag a
        listing returns, so where the store's ETag is no MD5 it is never served."""
        self.put(output_id, generation, _md5(text.encode()), text)

    def put(self, output_id: str, generation: int, md5: str | None, text: str) -> None:
        """Keep ``text`` if the store's ``md5`` is its MD5 (what a later ``get``
        checks). Never fails a lookup: a folder that cannot be written keeps nothing."""
        data = text.encode()
        if self.folder is None or md5 != _md5(data):
            return
        path = self._path(output_id, generation)
        with contextlib.suppress(OSError):
            _private(path.parent)
            # Whole or not at all: a reader never sees half a copy (nor would use it).
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temp, path)
            except BaseException:
                os.unlink(temp)  # a full disk leaves no half-written files behind
                raise


def sweep(folder: Path, now: float | None = None) -> int:
    """Delete the copies (and leftovers of interrupted writes) written more than
    ``KEEP_S`` ago, if the folder was last swept ``SWEEP_EVERY_S`` ago or never; how
    many were deleted. Never fails a lookup: a cache is only ever a shortcut, so what
    cannot be read or deleted is left for the next sweep."""
    now = time.time() if now is None else now
    stamp = folder / STAMP
    try:
        if now - stamp.stat().st_mtime < SWEEP_EVERY_S:
            return 0
    except FileNotFoundError:
        if not folder.is_dir():
            return 0  # nothing kept yet
    except OSError:
        return 0
    deleted = 0
    with contextlib.suppress(OSError):
        # The stamp first: processes starting meanwhile do not sweep again.
        stamp.touch()
        os.utime(stamp, (now, now))
        for shard in os.scandir(folder):
            if shard.is_dir(follow_symlinks=False):
                deleted += _sweep_shard(shard.path, now - KEEP_S)
    return deleted


def _sweep_shard(path: str, cutoff: float) -> int:
    deleted = 0
    with contextlib.suppress(OSError), os.scandir(path) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    deleted += 1
    return deleted


@contextlib.contextmanager
def packed(cache: RecordCache, pack) -> Iterator[None]:
    """Offer ``cache`` the records of ``pack`` (an ``ObjectStoragePath``: one object
    holding the records a DAG's last plan read, gzipped JSON), then, if what this walk
    read differs from it, write it again with exactly those. A pack is a copy like any
    other: each record in it is used only when its MD5 is the ETag the listing returned,
    so a stale or damaged pack costs reads, never a wrong answer. One GET instead of one
    per record: a plan on a machine that keeps nothing (a fresh pod) costs its listing
    pages and the pack."""
    from alamode_airflow.claims import read_whole

    try:
        loaded = json.loads(gzip.decompress(read_whole(pack.fs, pack.path)))
    except Exception:  # none yet, or damaged in any way: the records are read, and it made
        loaded = None
    if not isinstance(loaded, dict):
        loaded = {"format": PACK_FORMAT, "records": {}}
    if loaded.get("format") != PACK_FORMAT:
        yield  # another version's: it is left to that version, and not used
        return
    try:
        texts = {_pack_key(k): t.encode() for k, t in loaded["records"].items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        texts = {}
    del loaded
    cache.offered.update(texts)
    cache.served = {}
    try:
        yield
        served = cache.served
    finally:
        cache.served = None
        for key in texts:
            cache.offered.pop(key, None)
    if served.keys() != texts.keys() or any(t.encode() != texts[k] for k, t in served.items()):
        records = {f"{oid}/{g}": text for (oid, g), text in sorted(served.items())}
        data = gzip.compress(json.dumps({"format": PACK_FORMAT, "records": records}).encode(), 6)
        del records
        with contextlib.suppress(Exception):  # read-only credentials: no pack, no harm
            pack.write_bytes(data)


def _pack_key(key: str) -> tuple[str, int]:
    output_id, generation = key.split("/")
    return output_id, int(generation)


@functools.cache
def _private(folder: Path) -> None:
    """The folder and the cache's own, made for their owner alone when this makes them
    (a copy is trusted only as far as its MD5: nobody else should plant one). A folder
    that exists keeps its mode: ``record_cache`` may name a shared one."""
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.mkdir(exist_ok=True, mode=0o700)
