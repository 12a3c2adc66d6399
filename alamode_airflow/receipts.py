"""Receipts: what a plan needs of an object-store record, in the name of an empty key.

A plan must know of each output whether it is current: its newest generation has a
record, the record's data is all there, and every input is still the generation (and
the files) the record says it read. On an object store the listing of the outputs'
folders (``ObjectBackend.listings``: a page of keys for hundreds of outputs) says
which records and files exist; only the record's *content* needed a read, one GET
per output, the plan's whole cost. A commit therefore writes, after its record, an
empty object whose name states what the plan reads in the record:

``objects/<id>/<g>/receipt.<format>.<g>.<attempt>.<record md5>.<digest>.<reads>.<files>``

- ``format`` and ``g``: the record's format and generation, so that a version that
  cannot read the record (a newer format, during a rolling upgrade) or a folder copied
  under another generation's name never finds the receipt, and reads the record, which it
  refuses as it would without receipts;
- ``attempt``: the prefix the record commits (its ``data_path`` is ``<attempt>/data``);
- ``record md5``: the MD5 of the record's bytes, which S3 lists as the record's ETag;
- ``digest``: the record's ``digest`` (of its manifest), which its readers compare;
- ``reads``: ``records.reads_digest`` of what it read (input, generation, digest);
- ``files``: ``files_digest`` of the files the manifest names, with their sizes, and of
  the output ID and generation: a folder copied under another output's name (which
  its record would refuse as naming another output) holds no receipt of its own.

A receipt is believed only against the same listing: the record is listed with that MD5
as its ETag (so the record the receipt describes is the one there), and the keys under
the attempt's data prefix are exactly the manifest's files at their sizes. Anything
else (a receipt outliving its record, a record replaced by hand, a lifecycle rule that
took some files, a store whose ETags are not MD5s) leaves the receipt unbelieved, and the
record is read as before: a receipt can save a request, never change an answer. Its
``reads`` is compared with the inputs' current generations and digests; where they
differ, the plan reads the record, which names the input that changed.

Receipts are written on object stores only: on a local root a record costs a file read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alamode_airflow.record_cache import md5_of
from alamode_airflow.records import FORMAT, READABLE_FORMATS
from alamode_airflow.store import RECORD

if TYPE_CHECKING:
    from alamode_airflow.records import Made, SuccessRecord

PREFIX = "receipt."
_ATTEMPT_DATA = re.compile(r"([0-9a-f]{1,32})/data")
_NAME = re.compile(
    r"receipt\.([0-9]{1,9})\.([0-9]{1,18})\.([0-9a-f]{1,32})\."
    r"([0-9a-f]{32})\.([0-9a-f]{64})\.([0-9a-f]{64})\.([0-9a-f]{64})"
)


def files_digest(output_id: str, generation: int, files: Iterable[tuple[str, int]]) -> str:
    """One sha256 of an output's generation and a set of (path, size) in it: of a
    manifest's files, or of the keys a listing holds under a data prefix; equal only
    when both name the same files at the same sizes, in the same generation."""
    text = json.dumps([output_id, generation, sorted([path, size] for path, size in files)])
    return hashlib.sha256(text.encode()).hexdigest()


def md5_hex(data: bytes) -> str:
    """The MD5 a receipt names of a record's bytes (what S3 lists as its ETag)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Receipt:
    """A commit's receipt, as its key's name states it (and the folder it is in)."""

    output_id: str
    generation: int
    attempt: str
    record_md5: str
    digest: str
    reads: str
    files: str

    @classmethod
    def of(cls, record: SuccessRecord, text: bytes) -> Receipt | None:
        """The receipt of ``record`` committed as ``text``; None when it has none (a record
        that does not name every input's digest, or data not under an attempt)."""
        attempt = _ATTEMPT_DATA.fullmatch(record.data_path)
        if attempt is None or record.reads is None:
            return None
        listed = [(e.path, e.size) for e in record.manifest if e.link is None]
        files = files_digest(record.output_id, record.generation, listed)
        return cls(
            record.output_id,
            record.generation,
            attempt.group(1),
            md5_hex(text),
            record.digest,
            record.reads,
            files,
        )

    @classmethod
    def parse(cls, output_id: str, generation: int, name: str) -> Receipt | None:
        """The receipt a key named ``name`` in the folder of ``output_id``'s ``generation``
        states; None when it
        is not one, names another generation, or a record format this version cannot
        read."""
        match = _NAME.fullmatch(name)
        if match is None or int(match.group(2)) != generation:
            return None
        if int(match.group(1)) not in READABLE_FORMATS:
            return None
        return cls(output_id, generation, *match.groups()[2:])

    @property
    def name(self) -> str:
        """The key's name in the generation's folder."""
        return (
            f"{PREFIX}{FORMAT}.{self.generation}.{self.attempt}.{self.record_md5}."
            f"{self.digest}.{self.reads}.{self.files}"
        )

    def holds(self, keys: Mapping[str, str | None], sizes: Mapping[str, int]) -> bool:
        """Whether a listing of the output's folder (key -> ETag, key -> bytes, keys
        relative to the folder) holds the record this receipt describes and exactly the
        files it commits."""
        if md5_of(keys.get(f"{self.generation}/{RECORD}")) != self.record_md5:
            return False
        prefix = f"{self.generation}/{self.attempt}/data/"
        files = [(k[len(prefix) :], sizes.get(k, -1)) for k in keys if k.startswith(prefix)]
        return files_digest(self.output_id, self.generation, files) == self.files

    def stale_reason(self, current: Mapping[str, Made | None]) -> str | None:
        """``SuccessRecord.stale_reason`` as far as a receipt can tell, with ``current``
        naming the inputs as the record does: None when each is the generation and the
        files read (other names than the record's give a digest of other reads)."""
        from alamode_airflow.records import reads_digest

        for name in sorted(current):
            if current[name] is None:
                return f"input {name} is being computed again"
        now = [(name, made.generation, made.digest) for name, made in current.items()]  # type: ignore[union-attr]
        if reads_digest(now) != self.reads:
            return "an input is now another generation, or other files, than the one read"
        return None

    def produced_by(self) -> str:
        """One phrase for logs (the run is in the record, which a receipt spares reading)."""
        return f"the commit of generation {self.generation} (its record names the run)"


def borne_out(
    output_id: str, generation: int, keys: Mapping[str, str | None], sizes: Mapping[str, int]
) -> Receipt | None:
    """The receipt of ``output_id``'s ``generation`` that a listing of the output's folder
    bears out, if any (a generation holds one; a few where a lifecycle rule emptied the
    folder and the output was made again)."""
    folder = f"{generation}/"
    for key in keys:
        if key.startswith(folder) and key[len(folder) :].startswith(PREFIX):
            receipt = Receipt.parse(output_id, generation, key[len(folder) :])
            if receipt is not None and receipt.holds(keys, sizes):
                return receipt
    return None
