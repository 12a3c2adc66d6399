"""Leftovers garbage collection reclaims besides outputs, and how it deletes folders.

- ``staging/<output id>.<random>/`` of dead attempts. An attempt holds its output's
  exclusive flock for as long as its staging folder exists (it commits or discards the
  folder before letting go), so a staging folder seen, and then the output's lock found
  free, belongs to an attempt that is over: nothing will touch it again.
- ``quarantine/`` entries (generations moved aside for inspection) quarantined before
  the cut-off. A generation keeps the mtime of its build when it is moved aside, so the
  time it was quarantined is its ctime (a rename sets it): the newer of the two counts.
- ``locks/<output id>.lock`` of outputs no longer in ``objects/``, unlinked only while
  gc holds their exclusive flock (see ``_reclaim_lock``).
- everything in ``trash/``: what an interrupted gc moved out but did not delete.

Every folder leaves by one rename into ``trash/`` before it is deleted, and deleting
first makes each folder writable (committed folders may be read-only).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from a_la_mode.ids import is_output_id
from alamode_airflow.manifests import remove


@dataclass(frozen=True)
class Leftover:
    kind: str  # staging, quarantine, lock or trash
    path: str  # relative to the storage root
    size: int
    when: datetime | None = None  # last change (quarantine entries)


@dataclass(frozen=True)
class Unknown:
    """Something gc cannot read, so keeps: where (relative to the root) and why."""

    path: str
    reason: str
    task: str | None = None


def find(root: Path, cutoff: datetime) -> tuple[list[Leftover], list[Unknown]]:
    """Every leftover under ``root``, and names in ``staging/`` or ``locks/`` that gc
    does not recognise (left alone, and reported)."""
    found: list[Leftover] = []
    odd: list[Unknown] = []
    for path in _children(root / "staging"):
        output_id = as_output_id(path.name.split(".", 1)[0])
        if output_id is None:
            odd.append(Unknown(f"staging/{path.name}", "not an attempt's staging folder"))
        elif _lock_free(root, output_id):
            found.append(Leftover("staging", f"staging/{path.name}", size(path)))
    for path in _children(root / "quarantine"):
        when = _changed(path)
        if when is not None and when < cutoff:
            found.append(Leftover("quarantine", f"quarantine/{path.name}", size(path), when))
    for path in _children(root / "locks"):
        output_id = as_output_id(path.name.removesuffix(".lock"))
        if output_id is None or not path.name.endswith(".lock"):
            odd.append(Unknown(f"locks/{path.name}", "not the lock file of an output"))
        elif not (root / "objects" / output_id).exists() and _lock_free(root, output_id):
            found.append(Leftover("lock", f"locks/{path.name}", 0))
    for path in _children(root / "trash"):
        found.append(Leftover("trash", f"trash/{path.name}", size(path)))
    return found, odd


def reclaim(root: Path, leftovers: list[Leftover]) -> list[Leftover]:
    """Delete the leftovers still dead now; returns those deleted."""
    done = []
    for leftover in leftovers:
        path = root / leftover.path
        if leftover.kind == "staging":
            # Re-checked: the listing may be old (a dry run's), the lock is cheap to try.
            output_id = path.name.split(".", 1)[0]
            gone = _lock_free(root, output_id) and discard(root, path, f"staging.{path.name}")
        elif leftover.kind == "quarantine":
            gone = discard(root, path, f"quarantine.{path.name}")
        elif leftover.kind == "lock":
            gone = _reclaim_lock(root, path.name.removesuffix(".lock"))
        else:
            gone = path.exists()
            with contextlib.suppress(FileNotFoundError):  # another gc emptying trash/
                remove(path)
        if gone:
            done.append(leftover)
    return done


def _reclaim_lock(root: Path, output_id: str) -> bool:
    """Unlink an output's lock file while holding its exclusive flock, and only when the
    output is not in ``objects/``. Safe because ``store.locked`` and ``try_locked``
    check, after their flock, that the path still names the inode they locked, and
    re-open it if not: a task that opened this file before the unlink and locks it
    after takes a fresh lock file instead of holding a lock nobody else sees."""
    path = root / "locks" / f"{output_id}.lock"
    with _flocked(path) as handle:
        if handle is None:
            return False
        try:
            same = os.stat(path).st_ino == os.fstat(handle).st_ino
        except FileNotFoundError:
            return False
        if not same or (root / "objects" / output_id).exists():
            return False
        os.unlink(path)
        return True


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[int | None]:
    """The exclusive flock of an existing lock file, without waiting: the descriptor,
    or None if the file is gone or its lock is held. Never creates the file."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield handle
    finally:
        os.close(handle)  # closing releases the flock


def _lock_free(root: Path, output_id: str) -> bool:
    """Whether nobody holds the output's lock now. No lock file means no holder: a
    holder keeps the file open, and only a holder of its flock unlinks it."""
    path = root / "locks" / f"{output_id}.lock"
    if not path.exists():
        return True
    with _flocked(path) as handle:
        return handle is not None or not path.exists()


def discard(root: Path, path: Path, name: str) -> bool:
    """Move ``path`` into ``trash/`` with one rename, then delete it; False if it was
    gone already (another gc took it)."""
    trash = to_trash(root, path, name)
    if trash is not None:
        remove(trash)
    return trash is not None


def to_trash(root: Path, path: Path, name: str) -> Path | None:
    """Move ``path`` into ``trash/`` with one rename (deleting it can wait, and the
    next gc finishes it); None if it was gone already (another gc took it)."""
    trash = root / "trash" / f"{name}.{uuid.uuid4().hex[:8]}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return None
    except PermissionError:
        # Moving a folder to another parent rewrites its "..", so it must be writable.
        writable(path)
        os.rename(path, trash)
    return trash


def writable(folder: Path) -> None:
    """Let its owner add and remove entries in ``folder`` (a sealed one is 0555)."""
    mode = stat.S_IMODE(os.lstat(folder).st_mode)
    if mode & stat.S_IRWXU != stat.S_IRWXU:
        os.chmod(folder, mode | stat.S_IRWXU)


def as_output_id(name: str) -> str | None:
    """``name`` if it is an output ID, else None."""
    return name if is_output_id(name) else None


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _changed(path: Path) -> datetime | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return datetime.fromtimestamp(max(info.st_mtime, info.st_ctime), UTC)


def size(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed); what vanishes while it is
    counted (moved aside by a task, deleted by another gc) counts nothing."""
    total = 0
    for folder, _, files in os.walk(path) if path.is_dir() else [(path.parent, [], [path.name])]:
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
