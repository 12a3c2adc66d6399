"""Where outputs live, and the commit protocol that makes a success trustworthy.

Layout under the storage root::

    objects/<output id>/<generation>/data/         the output, as the command wrote it
    objects/<output id>/<generation>/record.json   its success record (authoritative)
    staging/<output id>.<random>/                  an attempt in progress
    locks/<output id>.lock                         held while producing or reading (local)
    quarantine/<output id>.<generation>.<random>/  bad records or vanished data, kept
    pins/<output id>                               outputs garbage collection keeps

Generation 0 is an output's first build; a forced rebuild commits generation 1, 2, ...
beside it, so an output once committed is never written again, and the latest
generation is the one readers get.

On a local root an attempt is committed by one ``rename`` of its staging folder to
``objects/<id>/<generation>``: a failed or killed attempt never appears there, and the
rename fails if another attempt committed that generation first. Object stores have no
atomic rename: the data is copied first and ``record.json`` written last, so a reader
never sees a record without its data. Data without a record there is an attempt in
progress or a dead one (``INCOMPLETE``): not a success, and overwritten by the next
producer of that generation. Producers on a local root hold an ``flock``; on an object
store they hold a claim (``claims.py``), since workers share no file system.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import functools
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from a_la_mode import AlamodeError
from alamode_airflow._compat import ObjectStoragePath
from alamode_airflow.claims import DEFAULT_LEASE_S, Claim, Claimant, Claims
from alamode_airflow.listing import child_names
from alamode_airflow.records import SuccessRecord

RECORD = "record.json"
DATA = "data"
_OUTPUT_ID = re.compile(r"[0-9a-f]{64}")


def check_output_id(value: str) -> str:
    """``value`` if it is an output ID (64 lower-case hex digits): IDs become paths, so
    anything else (``../x``) is refused before it reaches the store."""
    if not _OUTPUT_ID.fullmatch(value):
        raise AlamodeError(f"{value!r} is not an output ID (64 hex digits)")
    return value


class Found(enum.Enum):
    DONE = "done"
    MISSING = "missing"
    CORRUPT = "corrupt"  # a record that cannot be read or names another output
    VANISHED = "vanished"  # a record whose data is gone
    INCOMPLETE = "incomplete"  # object store: data being written, or abandoned


@dataclass(frozen=True)
class Lookup:
    status: Found
    record: SuccessRecord | None = None
    reason: str = ""
    generation: int | None = None

    @property
    def done(self) -> bool:
        return self.status is Found.DONE


class Committed(enum.Enum):
    COMMITTED = "committed"
    ALREADY = "already committed by another attempt"


class OutputStore:
    """Outputs addressed by ID under one root (local folder or object-store URL)."""

    def __init__(self, root: str, conn_id: str | None = None) -> None:
        self.url, self.conn_id = root, conn_id
        self.root = ObjectStoragePath(root, conn_id=conn_id)
        self.local = self.root.protocol in ("", "file")

    @functools.cached_property
    def lease_s(self) -> float:
        """``[alamode] claim_lease_seconds``: read by producers only, so a bad value
        stops no reader."""
        return _lease_s()

    @classmethod
    def configured(cls, root: str | None = None) -> OutputStore:
        """The store at ``root``, or at Airflow's ``[alamode] storage_root`` (with
        the connection ``[alamode] storage_conn_id`` for object stores)."""
        from alamode_airflow import settings

        return cls(root or settings.storage_root(), settings.get("storage_conn_id"))

    def object_dir(self, output_id: str, generation: int | None = None) -> ObjectStoragePath:
        folder = self.root / "objects" / check_output_id(output_id)
        return folder if generation is None else folder / str(generation)

    def generations(self, output_id: str) -> list[int]:
        """The committed generations of an output, oldest first."""
        names = child_names(self.object_dir(output_id))
        return sorted(int(name) for name in names if name.isdigit())

    def location(self, output_id: str, generation: int | None = None) -> ObjectStoragePath:
        """The committed output (the latest generation unless one is named)."""
        if generation is None:
            generation = max(self.generations(output_id), default=0)
        return self.object_dir(output_id, generation) / DATA

    def lookup(self, output_id: str) -> Lookup:
        """Whether the latest generation of ``output_id`` is a success (generations
        still being written to an object store do not count yet)."""
        for generation in reversed(self.generations(output_id)):
            found = self.read(output_id, generation)
            if found.status is not Found.INCOMPLETE:
                return found
        return Lookup(Found.MISSING)

    def settle(self, output_id: str, warn: Callable[..., None]) -> Lookup:
        """The latest generation's lookup, after moving aside (one ``warn`` line each)
        any generation whose record is bad or whose data vanished: those are not
        successes, and an older good generation, if any, becomes the latest."""
        found = self.lookup(output_id)
        while found.status in (Found.CORRUPT, Found.VANISHED):
            warn("output %s is not a success (%s); ignoring it", output_id[:12], found.reason)
            self.quarantine(output_id, found.generation)
            found = self.lookup(output_id)
        return found

    def history(self, output_id: str) -> list[Lookup]:
        """Every generation of ``output_id``, oldest first."""
        return [self.read(output_id, g) for g in self.generations(output_id)]

    def read(self, output_id: str, generation: int) -> Lookup:
        folder = self.object_dir(output_id, generation)
        where = f"{folder / RECORD}"
        try:
            record = SuccessRecord.loads((folder / RECORD).read_text())
        except FileNotFoundError:
            status = Found.CORRUPT if self.local else Found.INCOMPLETE
            return Lookup(status, reason=f"no record at {where}", generation=generation)
        except (ValueError, KeyError, TypeError) as exc:
            return Lookup(Found.CORRUPT, reason=f"unreadable {where}: {exc}", generation=generation)
        if record.output_id != output_id or record.generation != generation:
            return Lookup(
                Found.CORRUPT, reason=f"{where} names another output", generation=generation
            )
        # An object store has no empty folders: an output of no files has no data/.
        if (self.local or record.manifest) and not (folder / DATA).exists():
            return Lookup(Found.VANISHED, record, f"{where} but its data is gone", generation)
        return Lookup(Found.DONE, record, generation=generation)

    @contextlib.contextmanager
    def locked(
        self,
        output_id: str,
        *,
        shared: bool = False,
        claimant: Claimant | None = None,
        waiting: Callable[..., None] | None = None,
    ) -> Iterator[None]:
        """Hold the output's lock: exclusive while producing it (a second producer
        waits, then finds the record), shared while reading it (garbage collection
        leaves it alone). On an object store the exclusive lock is a claim made by
        ``claimant`` (``waiting`` logs whom it waits for); readers take nothing."""
        if not self.local:
            if shared or claimant is None:
                yield
                return
            claims = Claims(self.root, self.lease_s)
            with claims.held(output_id, claimant, lambda claim: _tell(waiting, claim)):
                yield
            return
        locks = Path(self.root.path) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{output_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def busy(self, output_id: str, claimant: Claimant) -> Claim | None:
        """On an object store, the live claim of another attempt producing the output
        (a producer that would wait for it can wait elsewhere); else None."""
        if self.local:
            return None
        holder = Claims(self.root).holder(output_id)
        # An earlier try of this task instance is dead to Airflow: take over from it.
        return holder if holder is not None and holder.owner != claimant.owner else None

    @contextlib.contextmanager
    def try_locked(self, output_id: str) -> Iterator[bool]:
        """The exclusive lock if nobody holds the output's lock now, without waiting:
        yields False while a task produces or reads the output."""
        locks = Path(self.root.path) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{output_id}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
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
        """Move a finished attempt into place as ``record.generation``, unless that
        generation was committed already."""
        if self.local:
            return self._commit_local(staging, record)
        return self._commit_remote(staging, record)

    def quarantine(self, output_id: str, generation: int) -> None:
        """Move aside a generation whose record is bad or whose data vanished: it is not
        a success, and its bytes are kept for inspection, not deleted."""
        source = self.object_dir(output_id, generation)
        name = f"{output_id}.{generation}.{uuid.uuid4().hex[:8]}"
        target = self.root / "quarantine" / name
        if not self.local:
            # No rename on an object store: copy every object, then delete the source.
            fs = source.fs
            keys = fs.find(source.path)
            # Another worker may be moving the same generation aside right now.
            with contextlib.suppress(FileNotFoundError):
                for key in keys:
                    fs.copy(key, target.path + key[len(source.path) :])
                fs.rm(keys)
            return
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.rename(source.path, target.path)

    def _commit_local(self, staging: Path, record: SuccessRecord) -> Committed:
        (staging / RECORD).write_text(record.dumps())
        target = Path(self.object_dir(record.output_id, record.generation).path)
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
        folder = self.object_dir(record.output_id, record.generation)
        if (folder / RECORD).exists():
            self.discard(staging)
            return Committed.ALREADY
        data = folder / DATA
        if data.exists():  # a dead attempt's leftovers: never a success, no record
            data.fs.rm(data.path, recursive=True)
        for entry in record.manifest:
            data.fs.put_file(str(staging / DATA / entry.path), (data / entry.path).path)
        try:
            # Exclusive: of two holders (one stalled past its lease), one commits.
            with (folder / RECORD).open("xb") as handle:
                handle.write(record.dumps().encode())
        except FileExistsError:
            return Committed.ALREADY
        finally:
            self.discard(staging)
        return Committed.COMMITTED

    def where(self, output_id: str, generation: int | None = None) -> str:
        """The committed output's location as people write it: a path, or a URL."""
        location = self.location(output_id, generation)
        return location.path if self.local else str(location)

    def fetch(self, output_id: str, generation: int, into: Path) -> Path:
        """A local folder with the committed output: the output itself on a local
        root, else a copy of every file under it downloaded ``into`` a new folder
        (commands read local files)."""
        data = self.location(output_id, generation)
        if self.local:
            return Path(data.path)
        into.mkdir(parents=True)
        fs, prefix = data.fs, data.path.rstrip("/") + "/"
        for key in fs.find(prefix):
            target = into / key[len(prefix) :]
            if not target.resolve().is_relative_to(into.resolve()):
                raise AlamodeError(f"output {output_id} holds a file outside it: {key}")
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(key, str(target))
        return into


def _lease_s() -> float:
    from alamode_airflow import settings

    value = settings.get("claim_lease_seconds") or DEFAULT_LEASE_S
    try:
        lease = float(value)
    except ValueError:
        lease = 0.0
    if lease <= 0:
        raise AlamodeError(
            f"[alamode] claim_lease_seconds must be a positive number, not {value!r}"
        )
    return lease


def _tell(waiting: Callable[..., None] | None, claim: Claim) -> None:
    if waiting is not None:
        waiting("waiting for %s (attempt %s on %s)", claim.owner, claim.attempt, claim.host)
