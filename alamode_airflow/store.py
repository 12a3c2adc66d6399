"""Where outputs live, and the rules that make a success trustworthy.

Layout under the storage root::

    objects/<output id>/<generation>/record.json   the success record (authoritative)
    objects/<output id>/<generation>/<data path>/  the output, as the command wrote it
    objects/<output id>/<generation>/receipt.*     what a plan reads in the record (objects)
    objects/<output id>/<generation>.void          a quarantined generation's tombstone
    staging/<output id>.<random>/                  an attempt in progress (local)
    locks/<output id>.lock                         held while producing or reading (local)
    gates/<output id>                              where producers queue ahead of readers
    claims/<output id>/<n>                         who produces an output (object stores)
    quarantine/<output id>.<generation>.<random>/  bad records or vanished data, kept
    pins/<output id>                               outputs garbage collection keeps
    tasks/<task>/<dag id>/<output id>.<generation> a marker per record (task_index)
    packs/<dag id>.json.gz                         the records a DAG's plan read (object stores)
    partitions/<file output id>/<output id>        a partitioned task's outputs, by file ID

Generation 0 is an output's first build; a rebuild, or a run that finds the output
stale (an input it read has a newer generation now), commits generation 1, 2, ...
beside it, so an output once committed is never written again. The newest generation
is the current one, and a generation once superseded never becomes current again: when
the newest generation's record is bad or its data vanished, it is quarantined and a
tombstone left in its place, and the output counts as missing (the next producer
writes the next generation) rather than falling back to the data a rebuild replaced.

How an attempt is committed, and how producers exclude each other, differs by kind of
root: ``store_local.LocalBackend`` (rename of a staging folder, ``flock``) and
``store_object.ObjectBackend`` (per-attempt prefixes, an exclusively created record,
claims). ``OutputStore`` holds what is the same for both: IDs, generations, reading
records, and the rules above.

On an object store every request is a round trip, so a lookup is one listing of
``objects/<id>/`` (the keys of all its generations: which have a record, a tombstone,
the record's data) and one read of the current record. Walks of many outputs (the plan,
``status``, gc, a partitioned task's intervals) call ``lookup_all``: their folders are
listed together, in pages of ``objects/`` that each answer for hundreds of outputs, and
the records are read many at once, and not at all where this machine keeps a copy the
listing vouches for (``record_cache``); the plan reads none whose receipt the listing
bears out (``receipts``). No walk costs more requests than a listing and a read per
output (the plan: and a read per output a receipt finds stale, for its reason), and
none the engine makes on its way to running a task lists more than the outputs it
looks up.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from a_la_mode import AlamodeError
from a_la_mode.ids import is_output_id
from alamode_airflow._compat import ObjectStoragePath
from alamode_airflow.claims import Claim, Claimant
from alamode_airflow.listing import child_names, is_local
from alamode_airflow.records import Made, NewerFormat, SuccessRecord

if TYPE_CHECKING:
    from alamode_airflow.receipts import Receipt

RECORD = "record.json"
DATA = "data"
VOID = ".void"
#: Lookups one walk of the store (the plan, a task's inputs) has in flight at once.
LOOKUP_WORKERS = 32


def check_output_id(value: str) -> str:
    """``value`` if it is an output ID (64 lower-case hex digits): IDs become paths, so
    anything else (``../x``) is refused before it reaches the store."""
    if not is_output_id(value):
        raise AlamodeError(f"{value!r} is not an output ID (64 hex digits)")
    return value


class Found(enum.Enum):
    DONE = "done"
    MISSING = "missing"
    CORRUPT = "corrupt"  # a record that cannot be read or names another output
    VANISHED = "vanished"  # a record whose data is gone
    INCOMPLETE = "incomplete"  # object store: data being written, or abandoned
    NEWER = "newer"  # a record of a newer format: left alone, this version cannot use it


@dataclass(frozen=True)
class Lookup:
    status: Found
    record: SuccessRecord | None = None
    reason: str = ""
    # The generation looked at; for a miss, the newest generation ever committed (the
    # next producer writes the one after it), or None when there never was one.
    generation: int | None = None
    # Found done by its receipt (``receipts``), the record left unread: a plan's lookups only.
    receipt: Receipt | None = None

    @property
    def done(self) -> bool:
        return self.status is Found.DONE

    @property
    def made(self) -> Made | None:
        """What readers compare of a success: its record, or the receipt standing in."""
        return self.record if self.record is not None else self.receipt

    @property
    def next_generation(self) -> int:
        """The generation the next producer of this output commits."""
        return 0 if self.generation is None else self.generation + 1


@dataclass(frozen=True)
class Listing:
    """One look at an output's folder: the generations that have a folder (oldest
    first), the newest tombstoned generation, and, where one request brought back
    every key under the folder (object stores), those keys relative to it, each with
    its ETag. With the keys, whether a generation has a record and whether its data is
    there are answered without asking the store again, and a record this machine read
    before need not be read again (``record_cache``); ``size`` is the bytes of those
    keys (what gc reports)."""

    present: list[int]
    void: int | None
    keys: Mapping[str, str | None] | None = None
    size: int | None = None

    @classmethod
    def of(
        cls,
        names: Iterable[str],
        keys: Mapping[str, str | None] | None = None,
        size: int | None = None,
    ) -> Listing:
        """From the names in the folder (``0``, ``1``, ``0.void``, ...)."""
        names = set(names)
        present = sorted(int(name) for name in names if name.isdigit())
        voids = [name[: -len(VOID)] for name in names if name.endswith(VOID)]
        void = max((int(v) for v in voids if v.isdigit()), default=None)
        return cls(present, void, keys, size)


def look_up_all(
    look: Callable[[str], Lookup], output_ids: Iterable[str], workers: int = LOOKUP_WORKERS
) -> dict[str, Lookup]:
    """``look`` of each output ID, up to ``workers`` at once: on an object store each
    lookup waits on round trips, so a walk of many outputs takes about as long as its
    slowest ``len / workers`` lookups, not the sum of them all."""
    ids = list(dict.fromkeys(output_ids))
    if len(ids) < 2 or workers < 2:
        return {output_id: look(output_id) for output_id in ids}
    # The first alone: it makes the client the others share (the connection is read
    # and the session made once, with a connection pool as wide as the workers).
    first = look(ids[0])
    pool = ThreadPoolExecutor(min(workers, len(ids) - 1), thread_name_prefix="alamode-lookup")
    try:
        return {ids[0]: first, **dict(zip(ids[1:], pool.map(look, ids[1:]), strict=True))}
    finally:
        pool.shutdown(cancel_futures=True)  # a lookup failed: start no others


class Committed(enum.Enum):
    COMMITTED = "committed"
    ALREADY = "already committed by another attempt"


class OutputStore:
    """Outputs addressed by ID under one root (local folder or object-store URL)."""

    def __init__(self, root: str, conn_id: str | None = None) -> None:
        self.url, self.conn_id = root, conn_id
        self.root = ObjectStoragePath(root, conn_id=conn_id)
        self.local = is_local(self.root)
        if self.local:
            from alamode_airflow.store_local import LocalBackend

            self.backend = LocalBackend(self)
        else:
            from alamode_airflow.store_object import ObjectBackend

            self.backend = ObjectBackend(self)

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
        """The generations of an output that have a folder, oldest first."""
        return self._generations(output_id)[0]

    def newest_generation(self, output_id: str) -> int | None:
        """The highest generation this output ever had (committed or tombstoned)."""
        present, void = self._generations(output_id)
        return max([*present, *([void] if void is not None else [])], default=None)

    def retire(self, output_id: str, generation: int) -> None:
        """Leave a tombstone for ``generation`` (after gc took the output away): the
        next producer writes the generation after it, so a generation number never
        comes to name other bytes."""
        self.backend.bury(check_output_id(output_id), generation)

    def _generations(self, output_id: str) -> tuple[list[int], int | None]:
        """(generations with a folder, the newest tombstoned generation or None)."""
        listing = self.backend.listing(check_output_id(output_id))
        return listing.present, listing.void

    def location(self, output_id: str, generation: int | None = None) -> ObjectStoragePath:
        """Where a committed generation's data is (the current one unless named)."""
        found = self.lookup(output_id) if generation is None else self.read(output_id, generation)
        return self.located(output_id, found)

    def located(self, output_id: str, found: Lookup) -> ObjectStoragePath:
        """Where the data of a generation already looked up is (no request)."""
        if found.record is not None:
            return self.data_of(found.record)
        return self.object_dir(output_id, found.generation or 0) / DATA

    def data_of(self, record: SuccessRecord) -> ObjectStoragePath:
        """Where the data a record describes is (no lookup: the record says)."""
        return self.object_dir(record.output_id, record.generation) / record.data_path

    def shown(self, location: ObjectStoragePath) -> str:
        """A location as people write it: a path, or a URL."""
        return location.path if self.local else str(location)

    def where(self, output_id: str, generation: int | None = None) -> str:
        """The committed output's location as people write it: a path, or a URL."""
        return self.shown(self.location(output_id, generation))

    def lookup(
        self, output_id: str, listing: Listing | None = None, by_receipt: bool = False
    ) -> Lookup:
        """The current generation of ``output_id``: the newest one, unless it is still
        being written (object stores), when the one before it is still current. A
        tombstone ends the search: what it superseded never comes back.

        On an object store this is one listing of the output's folder and one read of
        the current record (two requests), unless the folder holds too many keys for
        one page of a listing; with ``listing`` (the folder listed already, by
        ``lookup_all``), the read alone. With ``by_receipt``, a generation whose receipt the
        listing bears out is found done by it, its record unread (``receipts``)."""
        check_output_id(output_id)
        found = None
        for attempt, last in enumerate((False, False, True)):
            if listing is None or attempt:
                listing = self.backend.listing(output_id)
            # A listed record gone when read was quarantined meanwhile (its tombstone
            # came first): look again. Twice more at most, then record by record.
            found = self._current(
                output_id, replace(listing, keys=None) if last else listing, by_receipt
            )
            if found is not None:
                break
        assert found is not None  # without keys, a missing record is a miss
        return found

    def _current(self, output_id: str, listing: Listing, by_receipt: bool) -> Lookup | None:
        void = listing.void
        for generation in reversed(listing.present):
            if void is not None and generation <= void:
                break
            receipt = (
                self.backend.receipt(output_id, generation, listing.keys) if by_receipt else None
            )
            if receipt is not None:
                return Lookup(Found.DONE, generation=generation, receipt=receipt)
            found = self._read(output_id, generation, listing.keys)
            if found is None or found.status is not Found.INCOMPLETE:
                return found
        if void is not None:
            reason = f"generation {void} was quarantined; it is built again as {void + 1}"
            return Lookup(Found.MISSING, reason=reason, generation=void)
        return Lookup(Found.MISSING)

    def settle(
        self,
        output_id: str,
        warn: Callable[..., None],
        listing: Listing | None = None,
        by_receipt: bool = False,
    ) -> Lookup:
        """The current generation's lookup, after moving aside (one ``warn`` line) a
        current generation whose record is bad or whose data vanished: it is not a
        success, and the output is then missing, never an older generation again."""
        found = self.lookup(output_id, listing, by_receipt)
        if found.status in (Found.CORRUPT, Found.VANISHED):
            warn("output %s is not a success (%s); ignoring it", output_id[:12], found.reason)
            self.quarantine(output_id, found.generation)
            found = self.lookup(output_id)
        return found

    def lookup_all(
        self,
        output_ids: Iterable[str],
        warn: Callable[..., None] | None = None,
        pack: str | None = None,
        by_receipt: bool = False,
    ) -> dict[str, Lookup]:
        """``lookup`` of each output (``settle`` with ``warn``), many at once. The
        backend first lists the outputs' folders together where it can
        (``listings``: on an object store, a few pages of keys for many outputs,
        rather than a listing each), so a walk of many cached outputs costs about one
        record read per output, all of them concurrent (``look_up_all``). With
        ``pack`` (a DAG's id: the plan's), an object store also serves the records
        from that DAG's pack, one object, and writes it again if it changed. With
        ``by_receipt`` (the plan's), outputs whose receipts the listing bears out cost no read
        at all, and their lookups carry the receipt instead of the record (``receipts``)."""
        ids = list(dict.fromkeys(output_ids))
        with self.backend.packed(pack):
            return self._lookup_all(ids, warn, by_receipt)

    def _lookup_all(
        self, ids: list[str], warn: Callable[..., None] | None, by_receipt: bool
    ) -> dict[str, Lookup]:
        listed = self.backend.listings([check_output_id(oid) for oid in ids])

        def look(output_id: str) -> Lookup:
            listing = listed.get(output_id)
            if warn is None:
                return self.lookup(output_id, listing, by_receipt)
            return self.settle(output_id, warn, listing, by_receipt)

        return look_up_all(look, ids)

    def with_record(self, output_id: str, found: Lookup) -> Lookup:
        """A generation found done by its receipt, with its record: one read, or none
        where this machine keeps it. The receipt showed the data whole against the listing
        for the record of the MD5 it names, so only that record is taken as it is; one
        replaced since is looked up again from the start."""
        from alamode_airflow.receipts import md5_hex

        receipt = found.receipt
        if receipt is None:
            return found
        try:
            text = self.backend.read_record(
                output_id, receipt.generation, f'"{receipt.record_md5}"'
            )
        except FileNotFoundError:
            return self.lookup(output_id)
        if md5_hex(text.encode()) != receipt.record_md5:
            return self.lookup(output_id)
        return self._check(output_id, receipt.generation, text, None, whole=True)

    def with_records(self, found: Mapping[str, Lookup]) -> dict[str, Lookup]:
        """``with_record`` of each output of ``found`` (output ID -> its lookup), many at
        once."""
        return look_up_all(lambda output_id: self.with_record(output_id, found[output_id]), found)

    def history(self, output_id: str, listing: Listing | None = None) -> list[Lookup]:
        """Every generation of ``output_id`` that has a folder, oldest first (on an
        object store: one listing, unless ``listing`` is the folder listed already by
        ``backend.listings``, and one read per record)."""
        if listing is None:
            listing = self.backend.listing(check_output_id(output_id))
        return [
            self._read(output_id, g, listing.keys) or self.read(output_id, g)
            for g in listing.present
        ]

    def read(self, output_id: str, generation: int) -> Lookup:
        """One generation: its record, checked against where it was found."""
        found = self._read(output_id, generation, None)
        assert found is not None
        return found

    def _read(
        self, output_id: str, generation: int, keys: Mapping[str, str | None] | None
    ) -> Lookup | None:
        """``read``, answered from ``keys`` (a listing of the output's folder: key ->
        ETag) where it can be; None when a record the listing holds is gone. Paths are
        only made for what goes wrong: on a plan's walk, making them costs more than
        parsing."""
        if keys is None or (name := f"{generation}/{RECORD}") in keys:
            try:
                etag = None if keys is None else keys[name]
                text = self.backend.read_record(output_id, generation, etag)
            except FileNotFoundError:
                if keys is not None:
                    return None
            else:
                return self._check(output_id, generation, text, keys)
        reason = f"no record at {self._where(output_id, generation)}"
        return Lookup(self.backend.without_record, reason=reason, generation=generation)

    def _check(
        self, output_id: str, generation: int, text: str, keys, whole: bool = False
    ) -> Lookup:
        """The lookup of a generation whose record reads ``text`` (its data known to be
        whole with ``whole``: ``with_record``)."""
        try:
            record = SuccessRecord.loads(text)
        except NewerFormat as exc:
            # Never quarantined: during a rolling upgrade, newer workers wrote it.
            reason = f"{self._where(output_id, generation)}: {exc}; upgrade alamode-airflow"
            return Lookup(Found.NEWER, reason=f"{reason} to use it", generation=generation)
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"unreadable {self._where(output_id, generation)}: {exc}"
            return Lookup(Found.CORRUPT, reason=reason, generation=generation)
        if record.output_id != output_id or record.generation != generation:
            reason = f"{self._where(output_id, generation)} names another output"
            return Lookup(Found.CORRUPT, reason=reason, generation=generation)
        listed = None if keys is None else (keys, f"{generation}/{record.data_path}")
        if not whole and not self.backend.has_data(record, listed):
            reason = f"{self._where(output_id, generation)} but its data is gone or changed"
            return Lookup(Found.VANISHED, record, reason, generation)
        return Lookup(Found.DONE, record, generation=generation)

    def _where(self, output_id: str, generation: int) -> str:
        return f"{self.object_dir(output_id, generation) / RECORD}"

    def locked(
        self,
        output_id: str,
        *,
        shared: bool = False,
        claimant: Claimant | None = None,
        waiting: Callable[..., None] | None = None,
        presumed_dead: int | None = None,
        busy: Callable[[Claim], None] | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the output: exclusively while producing it (a second producer waits,
        then finds the record), shared while reading it (gc leaves it alone). On an
        object store the exclusive hold is a claim made by ``claimant`` (``waiting``
        logs whom it waits for; ``presumed_dead`` is a claim number a trigger already
        watched go unrenewed for a whole lease; ``busy`` is told of another attempt's
        live claim before waiting for it, and may raise to wait elsewhere: the same
        read of the claims that would have taken the output); readers take nothing
        there."""
        check_output_id(output_id)
        return self.backend.locked(output_id, shared, claimant, waiting, presumed_dead, busy)

    def busy(self, output_id: str, claimant: Claimant, presumed_dead: int | None = None):
        """On an object store, the live claim of another attempt producing the output
        (a producer that would wait for it can wait elsewhere); else None."""
        return self.backend.busy(check_output_id(output_id), claimant, presumed_dead)

    def try_locked(self, output_id: str) -> contextlib.AbstractContextManager[bool]:
        """The exclusive lock if nobody holds the output's lock now, without waiting:
        yields False while a task produces or reads the output (local roots)."""
        return self.backend.try_locked(check_output_id(output_id))

    def stage(self, output_id: str) -> Path:
        """A fresh, empty staging folder; the command writes into its ``data/``."""
        staging = self.backend.stage(check_output_id(output_id))
        (staging / DATA).mkdir()
        return staging

    def data_path(self, staging: Path) -> str:
        """What a record committed from ``staging`` names as its data path."""
        return self.backend.data_path(staging)

    def discard(self, staging: Path) -> None:
        self.backend.discard(staging)

    def commit(self, staging: Path, record: SuccessRecord) -> Committed:
        """Make a finished attempt ``record.generation`` of its output, unless that
        generation was committed already (then the attempt is discarded)."""
        if record.data_path != self.data_path(staging):
            raise AlamodeError(f"record names data at {record.data_path}, not this attempt's")
        if record.file_output_id is not None:
            # Before the record: an index entry may name an output that is not (yet)
            # committed, which readers check, but a committed one is never unlisted.
            self.backend.mark(f"partitions/{record.file_output_id}/{record.output_id}")
        committed = self.backend.commit(staging, record)
        # After the record (either way it is there now): a marker names a record, which
        # ``alamode explain`` finds by its task without listing ``objects/``.
        from alamode_airflow.task_index import marker

        self.backend.mark(marker(record))
        return committed

    def partitions(self, file_output_id: str) -> list[str]:
        """The output IDs ever committed (or attempted) for a partitioned task's file
        ID, one per interval; look each up to know whether it is done."""
        names = child_names(self.root / "partitions" / check_output_id(file_output_id))
        return sorted(name for name in names if is_output_id(name))

    def quarantine(self, output_id: str, generation: int) -> None:
        """Move aside a generation whose record is bad or whose data vanished or was
        changed: it is not a success, and its bytes are kept for inspection. Its
        tombstone is written first, so no reader ever sees the generation before it
        as current."""
        self.backend.bury(output_id, generation)
        self.backend.quarantine(output_id, generation)

    def fetch(self, record: SuccessRecord, into: Path) -> Path:
        """A local folder with the committed output ``record`` describes: the output
        itself on a local root, else a copy of the files it names downloaded ``into``
        a new folder (commands read local files)."""
        return self.backend.fetch(record.output_id, self.data_of(record), into, record)
