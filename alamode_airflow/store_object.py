"""The commit protocol on an object store: per-attempt prefixes, an exclusively
created record, and claims.

An object store has no rename and no locks, but it has exclusive creation (S3's
``If-None-Match: *``). An attempt at generation ``g`` of an output uploads its files
under a prefix of its own, ``objects/<id>/<g>/<attempt>/data/``, then creates
``objects/<id>/<g>/record.json`` exclusively; the record names the prefix it commits
(``data_path``). The attempt that created the record then leaves its receipt beside it
(``receipts``: an empty key whose name states what a plan would read in the record). So:

- a reader never sees a record without its data (the data is uploaded first);
- of two attempts at one generation (a worker that stalled past its lease and the one
  that took over), one record is created, and it names only its own attempt's files:
  the other attempt can go on uploading, but only into a prefix nobody reads;
- nothing but gc ever deletes another attempt's files, and leftovers of dead attempts
  are never a success (no record names them).

Producers on different workers exclude each other with claims (``claims.py``) so that
an output is usually computed once; correctness never depends on the claim.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from a_la_mode import AlamodeError
from alamode_airflow import receipts
from alamode_airflow.claims import DEFAULT_LEASE_S, Claim, Claimant, Claims, read_whole
from alamode_airflow.listing import child_names
from alamode_airflow.manifests import remove
from alamode_airflow.record_cache import RecordCache, md5_of, packed
from alamode_airflow.records import SuccessRecord
from alamode_airflow.store import LOOKUP_WORKERS, RECORD

if TYPE_CHECKING:
    from alamode_airflow.store import Committed, Found, Listing, OutputStore


ATTEMPT_PREFIX = "alamode-"
#: Keys one listing of an output's folder brings back (S3's largest page).
LISTED_KEYS = 1000
#: Outputs a walk looks up before their folders are listed together
#: (``ObjectBackend.listings``), and the fewest a run of that scan covers.
SCAN_MIN = 64
#: Outputs a page of that scan must answer for, or the run's others are listed each.
SCAN_DENSE = 16
#: Keys most outputs have (a record, its receipt, a file or two of data, perhaps a tombstone).
KEYS_PER_OUTPUT = 5
#: The fewest keys a page of that scan asks for (near a run's end).
SCAN_KEYS = 100


class ObjectBackend:
    """Per-attempt uploads and exclusive records under an object-store URL."""

    def __init__(self, store: OutputStore) -> None:
        from alamode_airflow.store import Found

        self.store = store
        self.root = store.root
        self.base = store.root.path.rstrip("/")
        # Data without a record is an attempt in progress, or a dead one.
        self.without_record: Found = Found.INCOMPLETE

    @functools.cached_property
    def lease_s(self) -> float:
        """``[alamode] claim_lease_seconds``: read by producers only, so a bad value
        stops no reader."""
        return _lease_s()

    def listing(self, output_id: str) -> Listing:
        """One request: every key under the output's folder, when one page holds them
        (the records, tombstones and data of all its generations; a few keys for most
        outputs); else the folder's names (a second request), and files are then
        looked for one by one."""
        from alamode_airflow.store import Listing

        fs = self.root.fs
        if not hasattr(fs, "call_s3"):  # not S3's client: list the folder's names
            return Listing.of(child_names(self.store.object_dir(output_id)))
        _widen_pool(fs, LOOKUP_WORKERS)
        bucket, key, _ = fs.split_path(self._key(output_id))
        prefix = f"{key}/"
        page = fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=LISTED_KEYS)
        if page.get("IsTruncated"):
            return Listing.of(child_names(self.store.object_dir(output_id)))
        return _listed(page.get("Contents", ()), len(prefix))

    def listings(self, output_ids: list[str]) -> dict[str, Listing]:
        """The folders of many outputs, listed together: the keys of ``objects/``
        read in pages from just before each output not yet listed
        (``StartAfter``), so one page answers for every output whose keys it holds
        whole (outputs are a few keys each: a page answers for hundreds). It reads
        no key before the first output, and a page past a run's last output only
        where the run ends inside it. The IDs, sorted, are split into runs scanned at
        once, one thread each. Where a page answers for few outputs (they are sparse
        among the store's, or one output's keys fill a page), the rest of its run is
        left to each lookup's own listing: a walk costs at most a page per run more
        than a listing and a read per output."""
        fs = self.root.fs
        if not hasattr(fs, "call_s3") or len(output_ids) < SCAN_MIN:
            return {}
        _widen_pool(fs, LOOKUP_WORKERS)
        ids = sorted(output_ids)
        runs = max(1, min(LOOKUP_WORKERS, len(ids) // SCAN_MIN))
        size = -(-len(ids) // runs)
        with ThreadPoolExecutor(runs, thread_name_prefix="alamode-scan") as pool:
            parts = pool.map(self._scan, [ids[i : i + size] for i in range(0, len(ids), size)])
            return {oid: listing for part in parts for oid, listing in part.items()}

    def _scan(self, ids: list[str]) -> dict[str, Listing]:
        """``listings`` of one sorted run of IDs, page after page. A page answers for
        the outputs whose keys it holds whole: all of them when it is the listing's
        last, else those whose keys all sort before its last key (an output's keys
        are ``<id>/...``, all below ``<id>0``; names such as ``<id>.bak/`` sort
        elsewhere and are nobody's)."""

        fs = self.root.fs
        bucket, key, _ = fs.split_path(f"{self.base}/objects")
        prefix = f"{key}/"
        found: dict[str, Listing] = {}
        i = 0
        while i < len(ids):
            try:
                page = fs.call_s3(
                    "list_objects_v2",
                    Bucket=bucket,
                    Prefix=prefix,
                    StartAfter=prefix + ids[i],
                    # No more than the run's outputs are likely to fill: a page is parsed
                    # whole, and the next run's own pages read what lies past this one's.
                    MaxKeys=min(LISTED_KEYS, max(SCAN_KEYS, KEYS_PER_OUTPUT * (len(ids) - i))),
                )
            except OSError:
                break  # no listing from a key here (S3 directory buckets): each lists

            contents = page.get("Contents", ())
            if page.get("IsTruncated") and not contents:
                break  # S3 may end a page early, even empty: from here, each lists
            folders: dict[str, list[dict]] = {}
            for item in contents:
                folders.setdefault(item["Key"][len(prefix) :].split("/", 1)[0], []).append(item)
            last = None if not page.get("IsTruncated") else contents[-1]["Key"][len(prefix) :]
            start = i
            while i < len(ids) and (last is None or ids[i] + "0" <= last):
                found[ids[i]] = _listed(folders.get(ids[i], ()), len(prefix) + len(ids[i]) + 1)
                i += 1
            if last is not None and i - start < SCAN_DENSE:
                break  # few answered (sparse, or one output's keys fill pages): each lists
        return found

    def read_record(self, output_id: str, generation: int, etag: str | None = None) -> str:
        """The record's text: the copy this machine keeps when the listing's ``etag``
        says it is the record's (``record_cache``), else one GET (kept for next time)."""
        md5 = md5_of(etag)
        text = self.records.get(output_id, generation, md5)
        if text is None:
            path = self._key(output_id, str(generation), RECORD)
            text = read_whole(self.root.fs, path).decode()
            self.records.put(output_id, generation, md5, text)
        self.records.note(output_id, generation, md5, text)
        return text

    def receipt(self, output_id: str, generation: int, keys) -> receipts.Receipt | None:
        """The generation's receipt that ``keys`` (a listing of the output's whole folder)
        bears out, or None: then its record is read (``receipts``)."""
        if not isinstance(keys, ListedKeys):
            return None
        return receipts.borne_out(output_id, generation, keys, keys.sizes)

    def packed(self, name: str | None) -> contextlib.AbstractContextManager[None]:
        """Within it, records are also served from the pack ``name`` (a DAG's:
        ``record_cache.packed``), which is written again after if it changed."""
        if name is None:
            return contextlib.nullcontext()
        from alamode_airflow.task_index import folder_name

        return packed(self.records, self.root / "packs" / f"{folder_name(name)}.json.gz")

    @functools.cached_property
    def records(self) -> RecordCache:
        return RecordCache.configured(self.store.url)

    def _key(self, output_id: str, *parts: str) -> str:
        """The path of ``objects/<output id>/<parts>`` as the filesystem names it (a
        string: joining object-store paths costs more than the request's parsing)."""
        return "/".join([self.base, "objects", output_id, *parts])

    def _has(self, path: str) -> bool:
        """Whether an object is at ``path``: one HEAD (``exists`` would also list, to
        tell a missing object from a folder)."""
        fs = self.root.fs
        if not hasattr(fs, "call_s3"):
            return fs.exists(path)
        bucket, key, _ = fs.split_path(path)
        try:
            fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return False
        return True

    def has_data(self, record: SuccessRecord, listed) -> bool:
        """Whether the record's files are there. With ``listed`` (the keys of a listing
        of the output's whole folder, and the data's path among them), every file the
        manifest names is looked for among the keys, with the size the manifest
        gives: a lifecycle rule deletes a prefix's objects one by one, so an output
        can lose some files and keep others. Without it (the folder held more keys
        than a page), the first file alone, one request: one per file would make a
        large output's lookup cost a request per file. Links are not uploaded
        (``fetch`` makes them from the manifest), so only files are looked for."""
        # An object store has no empty folders: an output of no files has no data.
        files = [entry for entry in record.manifest if entry.link is None]
        if not files:
            return True
        if listed is None:
            return (self.store.data_of(record) / files[0].path).exists()
        keys, prefix = listed
        sizes = keys.sizes if isinstance(keys, ListedKeys) else {}
        for entry in files:
            key = f"{prefix}/{entry.path}"
            if key not in keys or sizes.get(key, entry.size) != entry.size:
                return False
        return True

    @contextlib.contextmanager
    def locked(
        self,
        output_id: str,
        shared: bool,
        claimant: Claimant | None,
        waiting,
        presumed_dead: int | None,
        busy: Callable[[Claim], None] | None = None,
    ) -> Iterator[None]:
        if shared or claimant is None:
            yield  # readers take nothing: committed generations never change
            return
        claims = Claims(self.root, self.lease_s, presumed_dead)
        with claims.held(output_id, claimant, lambda claim: _tell(waiting, claim), busy):
            yield

    def busy(self, output_id: str, claimant: Claimant, presumed_dead: int | None) -> Claim | None:
        holder = Claims(self.root, presumed_dead=presumed_dead).holder(output_id)
        # An earlier try of this task instance is dead to Airflow: take over from it.
        return holder if holder is not None and holder.owner != claimant.owner else None

    def try_locked(self, output_id: str):
        raise AlamodeError(f"{self.root} is an object store: it has no locks to try")

    def stage(self, output_id: str) -> Path:
        folder = Path(tempfile.gettempdir()) / (
            f"{ATTEMPT_PREFIX}{output_id[:12]}.{uuid.uuid4().hex[:16]}"
        )
        folder.mkdir()
        return folder

    def data_path(self, staging: Path) -> str:
        """The attempt's own prefix: unique per attempt, so no two attempts share it."""
        return f"{staging.name.rsplit('.', 1)[-1]}/data"

    def discard(self, staging: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            remove(staging)

    def commit(self, staging: Path, record: SuccessRecord) -> Committed:
        from alamode_airflow.store import Committed

        folder = self.store.object_dir(record.output_id, record.generation)
        try:
            if self._has(self._key(record.output_id, str(record.generation), RECORD)):
                # Lost already: upload nothing.
                return Committed.ALREADY
            data = folder / record.data_path
            for entry in record.manifest:
                if entry.link is None:
                    data.fs.put_file(str(staging / "data" / entry.path), (data / entry.path).path)
            text = record.dumps()
            try:
                # Exclusive: of two holders (one stalled past its lease), one commits.
                with (folder / RECORD).open("xb") as handle:
                    handle.write(text.encode())
            except FileExistsError:
                return Committed.ALREADY
            self._leave_receipt(folder, record, text)
            self.records.keep(record.output_id, record.generation, text)
            return Committed.COMMITTED
        finally:
            self.discard(staging)

    def _leave_receipt(self, folder, record: SuccessRecord, text: str) -> None:
        """Write the committed record's receipt, which spares plans reading it. The
        commit stands without one (its record is then read), so a failure here is not
        the task's."""
        receipt = receipts.Receipt.of(record, text.encode())
        if receipt is not None:
            # Any failure (s3fs passes some of botocore's through as they are): the
            # output is committed, and its record, marker and XCom must still follow.
            with contextlib.suppress(Exception):
                (folder / receipt.name).write_bytes(b"")

    def mark(self, relative: str) -> None:
        """An empty object at ``relative`` under the root (an index entry)."""
        (self.root / relative).write_bytes(b"")

    def bury(self, output_id: str, generation: int) -> None:
        from alamode_airflow.store import VOID

        (self.store.object_dir(output_id) / f"{generation}{VOID}").write_bytes(b"")

    def quarantine(self, output_id: str, generation: int) -> None:
        """Copy the generation's record, and the attempt prefix it names, aside, then
        delete them (no rename on an object store). Other attempts' prefixes are left
        alone: nothing but gc deletes another attempt's files."""
        source = self.store.object_dir(output_id, generation)
        name = f"{output_id}.{generation}.{uuid.uuid4().hex[:8]}"
        target = self.root / "quarantine" / name
        fs = source.fs
        keys = [key for key in [(source / RECORD).path] if fs.exists(key)]
        prefix = _data_prefix(fs, (source / RECORD).path)
        if prefix is not None:
            keys += fs.find((source / prefix).path)
        # Another worker may be moving the same generation aside right now.
        with contextlib.suppress(FileNotFoundError):
            # A receipt without its record is believed by nobody, but it goes with it.
            names = fs.ls(source.path, detail=False, refresh=True) if keys else []
            receipted = [key for key in names if key.rsplit("/", 1)[-1].startswith(receipts.PREFIX)]
            for key in keys:
                fs.copy(key, target.path + key[len(source.path) :])
            if keys:
                fs.rm(keys + receipted)

    def fetch(self, output_id: str, data, into: Path, record: SuccessRecord | None) -> Path:
        """Download the files the record names (only those: a dead attempt's leftovers
        or stray keys are never handed to a command)."""
        into.mkdir(parents=True)
        entries = record.manifest if record is not None else ()
        for entry in entries:
            target = into / entry.path
            if not target.resolve().is_relative_to(into.resolve()):
                raise AlamodeError(f"output {output_id} names a file outside it: {entry.path}")
            target.parent.mkdir(parents=True, exist_ok=True)
            link = entry.link
            if link is not None:
                target.symlink_to(link)
            else:
                data.fs.get_file((data / entry.path).path, str(target))
        return into


class ListedKeys(dict[str, str | None]):
    """The keys of an output's folder as one listing brought them back, each with its
    ETag (what ``Listing.keys`` holds), and ``sizes``: each key's bytes, which the
    listing gives at no cost and ``has_data`` compares with the manifest's."""

    __slots__ = ("sizes",)

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[str, int] = {}


def _listed(items, start: int) -> Listing:
    """The listing of an output's folder from its keys as S3 lists them (each key's
    name from ``start`` on, relative to the folder), with their ETags and bytes."""
    from alamode_airflow.store import Listing

    keys = ListedKeys()
    for item in items:
        key = item["Key"][start:]
        keys[key] = item.get("ETag")
        if "Size" in item:  # always, from S3; a key without one is not compared
            keys.sizes[key] = item["Size"]
    size = sum(keys.sizes.values())
    return Listing.of({key.split("/", 1)[0] for key in keys}, keys, size)


def _data_prefix(fs, record_key: str) -> str | None:
    """The data path a record names, read from its JSON even when the record is not
    valid as a whole; None when it names none."""
    try:
        value = json.loads(fs.cat_file(record_key)).get("data_path", "data")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(value, str) or ".." in value.split("/") or value.startswith("/"):
        return None
    return value


def _widen_pool(fs, connections: int) -> None:
    """Give each lookup in flight a connection: s3fs's client keeps 10 unless the
    Airflow connection's ``config_kwargs`` names ``max_pool_connections``. Only
    before the client is made (later it would not apply), and never over a setting."""
    config = getattr(fs, "config_kwargs", None)
    if isinstance(config, dict) and getattr(fs, "_s3", None) is None:
        config.setdefault("max_pool_connections", connections)


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


def _tell(waiting, claim: Claim) -> None:
    if waiting is not None:
        waiting("waiting for %s (attempt %s on %s)", claim.owner, claim.attempt, claim.host)
