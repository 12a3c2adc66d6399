"""Garbage collection: which outputs are still wanted, and reclaiming the rest safely.

Roots are every output the encoded files in the dags folder describe (every partition
and generation of them) and every pinned output. Anything else whose newest record is
older than the cut-off is reclaimable. Reclaiming moves an output's whole folder (data
and records together) out of ``objects/`` with one rename before deleting it, so a gc
stopped at any point leaves no record without its data; an output whose lock is held
(a task producing or reading it) is left alone.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from a_la_mode import AlamodeError, load
from alamode_airflow.loader import find_files
from alamode_airflow.store import OutputStore, check_output_id


@dataclass(frozen=True)
class Candidate:
    output_id: str
    task: str | None
    newest: datetime | None  # newest record's end; None when no record is readable
    size: int


def roots(dags_folder: str | Path) -> set[str]:
    """Output IDs (file IDs) of every task in every encoded file under the folder; a
    file that cannot be read stops gc, since its roots would be unknown."""
    found: set[str] = set()
    for path in find_files(dags_folder):
        try:
            pipeline = load(path)
        except AlamodeError as exc:
            message = f"cannot tell what it needs, so nothing is collected: {exc}"
            raise AlamodeError(message) from exc
        found.update(task.output for task in pipeline)
    return found


def pins(store: OutputStore) -> set[str]:
    folder = _local_root(store) / "pins"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def pin(store: OutputStore, output_id: str) -> None:
    check_output_id(output_id)
    folder = _local_root(store) / "pins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / output_id).touch()


def unpin(store: OutputStore, output_id: str) -> bool:
    check_output_id(output_id)
    path = _local_root(store) / "pins" / output_id
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def candidates(store: OutputStore, keep: set[str], older_than: timedelta) -> list[Candidate]:
    """Outputs neither kept nor produced more recently than ``older_than`` ago."""
    cutoff = datetime.now(UTC) - older_than
    result = []
    objects = _local_root(store) / "objects"
    for folder in sorted(objects.iterdir()) if objects.is_dir() else ():
        if folder.name in keep:
            continue
        history = [h.record for h in store.history(folder.name) if h.record is not None]
        if any(r.file_output_id in keep for r in history):
            continue
        newest = max((datetime.fromisoformat(r.end) for r in history), default=None)
        if newest is not None and newest > cutoff:
            continue
        task = history[-1].task if history else None
        result.append(Candidate(folder.name, task, newest, _size(folder)))
    return result


def collect(
    store: OutputStore, chosen: Iterable[Candidate], advance: Callable[[], None] = lambda: None
) -> tuple[list[str], list[str]]:
    """Delete the chosen outputs; returns (deleted, skipped because in use)."""
    root = _local_root(store)
    empty_trash(store)
    deleted, busy = [], []
    for candidate in chosen:
        with store.try_locked(candidate.output_id) as free:
            if not free:
                busy.append(candidate.output_id)
            else:
                trash = root / "trash" / f"{candidate.output_id}.{uuid.uuid4().hex[:8]}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                # The one step that matters: records and data leave objects/ together.
                os.rename(root / "objects" / candidate.output_id, trash)
                shutil.rmtree(trash)
                deleted.append(candidate.output_id)
        advance()
    return deleted, busy


def empty_trash(store: OutputStore) -> None:
    """Finish what an interrupted gc moved out of objects/ but did not delete."""
    trash = _local_root(store) / "trash"
    for folder in trash.iterdir() if trash.is_dir() else ():
        shutil.rmtree(folder, ignore_errors=True)


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m`` or ``0``.

    >>> parse_age("2d")
    datetime.timedelta(days=2)
    """
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    if text == "0":
        return timedelta(0)
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise AlamodeError(f"--older-than must look like 30d, 12h, 15m or 0, not {text!r}")
    return timedelta(**{units[unit]: int(number)})


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _local_root(store: OutputStore) -> Path:
    """The root folder; gc renames and deletes folders, which an object store has not."""
    if not store.local:
        raise AlamodeError(
            f"gc works on local storage roots; {store.root} is an object store "
            "(expire its objects with the bucket's lifecycle rules)"
        )
    return Path(store.root.path)
