"""The success record: what the engine writes after an output is committed.

The copy beside the output in the store is authoritative; the same dictionary is
pushed to XCom so the Airflow UI shows it. A record that cannot be read, or that names
another output, is a miss, never an error.

A record names exactly what its output was made from: each input's output ID *and the
generation of it that was read*. An output is current only while every input's current
generation is the one its record names (``stale_reason``): after an input is rebuilt,
everything made from its old generation is out of date, in every DAG that meets it.
Format 1 records (before generations were recorded) read as having read generation 0.

A generation number names one commit only while the store remembers the generations
it gave out: a local root keeps a tombstone of each removed generation, but a folder
deleted by hand, or an object store's lifecycle rule expiring an output, leaves nothing,
and the output is then made again as generation 0 with other files. So a record also
names, per input, the digest of the files it read (``input_digests``, format 3), and
an input whose generation holds other files than those makes its readers stale too.
Records before format 3 name no digest: their inputs are compared by generation alone.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from a_la_mode.ids import id_of
from a_la_mode.partitions import partition_id
from alamode_airflow.manifests import ManifestEntry, manifest_digest

FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
_DIGEST = re.compile(r"[0-9a-f]{64}")


class Made(Protocol):
    """What a reader's staleness compares of an input's current success: a record, or
    its receipt (``receipts.Receipt``)."""

    @property
    def generation(self) -> int: ...

    @property
    def digest(self) -> str: ...

    def produced_by(self) -> str: ...


def reads_digest(reads: Iterable[tuple[str, int, str]]) -> str:
    """One sha256 of what an output read: (input name, generation, digest) of each
    input, in any order. A record's ``reads`` and the inputs' current state give the
    same digest only when ``stale_reason`` finds nothing (``receipts``)."""
    text = json.dumps(sorted([name, generation, digest] for name, generation, digest in reads))
    return hashlib.sha256(text.encode()).hexdigest()


class NewerFormat(ValueError):
    """A record written by a newer version: not damage. It is neither a success this
    version can use nor something to set aside; the version must be upgraded."""


@dataclass(frozen=True)
class SuccessRecord:
    output_id: str
    dag_id: str
    task: str
    run_id: str
    try_number: int
    start: str
    end: str
    duration_s: float
    command: str
    image: str | None
    sha: str | None
    inputs: dict[str, str]
    preimage_b64: str
    host: str
    manifest: tuple[ManifestEntry, ...] = ()
    generation: int = 0
    # For a partitioned output: the task's ID in the file and the run's interval, from
    # which output_id derives; the preimage is then that of the file ID.
    file_output_id: str | None = None
    interval: tuple[str, str] | None = None
    rebuilt: bool = False
    # Per input name: the generation of that input the command read.
    input_generations: dict[str, int] = field(default_factory=dict)
    # Where the data is, relative to the generation's folder: ``data`` on a local root,
    # ``<attempt>/data`` on an object store (each attempt uploads under its own prefix).
    data_path: str = "data"
    # Per input name: the digest of the files of the generation read (``manifest_digest``).
    input_digests: dict[str, str] = field(default_factory=dict)
    format: int = field(default=FORMAT)

    def __post_init__(self) -> None:
        digest = id_of(base64.b64decode(self.preimage_b64))
        if digest != self.preimage_id:
            raise ValueError(f"record preimage hashes to {digest[:12]}, not its output ID")
        if self.interval is not None:
            start, end = self.interval
            if partition_id(self.file_output_id or "", start, end) != self.output_id:
                raise ValueError("record's file ID and interval do not give its output ID")
        if set(self.input_generations) - set(self.inputs):
            raise ValueError("record names generations of inputs it did not read")
        if set(self.input_digests) - set(self.inputs):
            raise ValueError("record names digests of inputs it did not read")
        if not all(
            isinstance(d, str) and _DIGEST.fullmatch(d) for d in self.input_digests.values()
        ):
            raise ValueError("record's input digests are not sha256 digests")
        if self.generation < 0 or any(g < 0 for g in self.input_generations.values()):
            raise ValueError("generations are not negative")
        if ".." in self.data_path.split("/") or self.data_path.startswith("/"):
            raise ValueError(f"record's data path {self.data_path!r} leaves its generation")

    @property
    def preimage_id(self) -> str:
        """The ID the preimage hashes to: the file ID of a partitioned output (its
        output ID derives from that and the interval), else the output ID itself."""
        return self.file_output_id or self.output_id

    def read_generation(self, name: str) -> int:
        """The generation of input ``name`` this output was made from."""
        return self.input_generations.get(name, 0)

    @functools.cached_property
    def digest(self) -> str:
        """The digest of the files this output holds (``manifest_digest``), as its
        readers' records name it."""
        return manifest_digest(self.manifest)

    @functools.cached_property
    def reads(self) -> str | None:
        """``reads_digest`` of what this output read; None when the record does not
        name every input's digest (before format 3), and only generations compare."""
        if set(self.input_digests) != set(self.inputs):
            return None
        return reads_digest(
            (name, self.read_generation(name), digest)
            for name, digest in self.input_digests.items()
        )

    def stale_reason(self, current: Mapping[str, Made | None]) -> str | None:
        """Why this output is out of date, given each input's current record or its
        receipt (None: the input has no current success and is being made again); None
        while every input is still the generation this record read, holding the files
        it read."""
        for name in sorted(self.inputs):
            now = current.get(name)
            if now is None:
                return f"input {name} is being computed again"
            if now.generation != self.read_generation(name):
                return f"input {name} is now generation {now.generation}"
            read = self.input_digests.get(name)
            if read is not None and read != now.digest:
                return (
                    f"input {name} generation {now.generation} now holds other files than "
                    "the ones read (it was removed and made again)"
                )
        return None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (lists, not tuples), so XCom stores it as written."""
        data = asdict(self)
        data["manifest"] = [entry.to_json() for entry in self.manifest]
        data["interval"] = list(self.interval) if self.interval else None
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> SuccessRecord:
        """Parse a record; raises ValueError (or KeyError/TypeError) when it is not one."""
        data = json.loads(text)
        number = data.get("format")
        if type(number) is int and number > FORMAT:
            raise NewerFormat(f"unknown record format {number} (newer than {FORMAT})")
        if number not in READABLE_FORMATS:
            raise ValueError(f"unknown record format {number!r}")
        data["format"] = FORMAT  # read as the current format: its defaults fill the gaps
        data["manifest"] = tuple(ManifestEntry.from_json(entry) for entry in data["manifest"])
        if data.get("interval") is not None:
            data["interval"] = tuple(data["interval"])
        return cls(**data)

    def produced_by(self) -> str:
        """One phrase for logs: which run made this output and when."""
        return (
            f"run {self.run_id} of {self.dag_id}.{self.task} (try {self.try_number}) at {self.end}"
        )
