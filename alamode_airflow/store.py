"""Where outputs live, and the commit protocol that makes a success trustworthy.

Layout under the storage root::

    objects/<output id>/data/         the output, as the command wrote it
    objects/<output id>/record.json   the success record (authoritative)
    staging/<output id>.<token>/      an attempt in progress: data/ + record.json
    locks/<output id>.lock            held while an output is being produced (local)
    quarantine/<output id>.<token>/   objects whose record was unreadable or whose data vanished

On a local root an attempt is committed by one ``rename`` of its staging folder to
``objects/<id>``: a failed or killed attempt never appears there, and the rename fails
if another attempt committed first. Object stores have no atomic rename: the data is
copied first and ``record.json`` written last, so a reader never sees a record without
its data. The engine never writes into or deletes an ``objects/<id>`` that has a valid
record.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alamode_airflow._compat import ObjectStoragePath
from alamode_airflow.records import SuccessRecord

RECORD = "record.json"
DATA = "data"


class Found(enum.Enum):
    DONE = "done"
    MISSING = "missing"
    CORRUPT = "corrupt"  # a record that cannot be read or names another output
    VANISHED = "vanished"  # a record whose data is gone


@dataclass(frozen=True)
class Lookup:
    status: Found
    record: SuccessRecord | None = None
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.status is Found.DONE


class Committed(enum.Enum):
    COMMITTED = "committed"
    ALREADY = "already committed by another attempt"


class OutputStore:
    """Outputs addressed by ID under one root (local folder or object-store URL)."""

    def __init__(self, root: str) -> None:
        self.root = ObjectStoragePath(root)
        self.local = self.root.protocol in ("", "file")

    def object_dir(self, output_id: str) -> ObjectStoragePath:
        return self.root / "objects" / output_id

    def location(self, output_id: str) -> ObjectStoragePath:
        """The committed output of ``output_id`` (what ALAMODE_INPUT_* point at)."""
        return self.object_dir(output_id) / DATA

    def lookup(self, output_id: str) -> Lookup:
        record_path = self.object_dir(output_id) / RECORD
        try:
            text = record_path.read_text()
        except FileNotFoundError:
            return Lookup(Found.MISSING)
        try:
            record = SuccessRecord.loads(text)
        except (ValueError, KeyError, TypeError) as exc:
            return Lookup(Found.CORRUPT, reason=f"unreadable record {record_path}: {exc}")
        if record.output_id != output_id:
            return Lookup(Found.CORRUPT, reason=f"record at {record_path} names another output")
        if not self.location(output_id).exists():
            return Lookup(Found.VANISHED, record, f"record at {record_path} but its data is gone")
        return Lookup(Found.DONE, record)

    @contextlib.contextmanager
    def producing(self, output_id: str) -> Iterator[None]:
        """Hold the output's lock while producing it, so a second producer of the same
        ID on this machine waits and then finds the record instead of computing again."""
        if not self.local:
            yield
            return
        locks = Path(self.root.path) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{output_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def stage(self, output_id: str) -> Path:
        """A fresh, empty staging folder; the command writes into its ``data/``."""
        if self.local:
            parent = Path(self.root.path) / "staging"
            parent.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f"{output_id}.", dir=parent))
        else:
            folder = Path(tempfile.mkdtemp(prefix=f"alamode-{output_id[:12]}."))
        (folder / DATA).mkdir()
        return folder

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def commit(self, staging: Path, record: SuccessRecord) -> Committed:
        """Move a finished attempt into place and record it, unless already done."""
        if self.local:
            return self._commit_local(staging, record)
        return self._commit_remote(staging, record)

    def quarantine(self, output_id: str) -> None:
        """Move aside an object whose record is unreadable or whose data vanished: it is
        not a success, and its bytes are kept for inspection, not deleted."""
        if not self.local:
            return
        source = Path(self.object_dir(output_id).path)
        target = Path(self.root.path) / "quarantine" / f"{output_id}.{uuid.uuid4().hex[:8]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.rename(source, target)

    def _commit_local(self, staging: Path, record: SuccessRecord) -> Committed:
        (staging / RECORD).write_text(record.dumps())
        target = Path(self.object_dir(record.output_id).path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            self.discard(staging)
            return Committed.ALREADY
        return Committed.COMMITTED

    def _commit_remote(self, staging: Path, record: SuccessRecord) -> Committed:
        if self.lookup(record.output_id).done:
            self.discard(staging)
            return Committed.ALREADY
        target = self.location(record.output_id)
        for entry in record.manifest:
            (target / entry.path).write_bytes((staging / DATA / entry.path).read_bytes())
        (self.object_dir(record.output_id) / RECORD).write_text(record.dumps())
        self.discard(staging)
        return Committed.COMMITTED
