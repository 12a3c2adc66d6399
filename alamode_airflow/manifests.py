"""What a committed output is made of, and how an attempt is made durable before commit.

**The manifest** lists everything under an output folder, sorted by path (component by
component), each with its path relative to the output (``/``-separated), size and
sha256. Nothing is followed while walking, so what is recorded is what is stored:

- a regular file is recorded with the size and sha256 of its bytes;
- a symbolic link is kept only when its target is relative, stays inside the output
  when read from the link's folder, and names something that exists there: such a link
  survives the rename into ``objects/`` and any copy of the output as a whole. It is
  recorded as a link (``link`` is its target text, not followed), with the size and
  sha256 of that text, as git stores a link;
- anything else is refused with ``OutputRefused``, naming the path and the reason: a
  link to an absolute path (it would name the staging folder, gone after the rename, or
  a file that can change after the commit), a link leaving the output, a dangling link
  or a loop, a link to a folder holding it (a cycle for whatever follows links),
  special files (fifos, sockets, devices), which hold no bytes to keep, and what cannot
  be read.

Folders are not listed (an object store has none); a link to a folder is a link.

**Sealing** (``seal``) makes a finished attempt durable and read-only before it is
committed by rename. The order is what makes a record trustworthy after a power loss:
the data and the record are flushed to disk first (every file and every folder, at
once), then the staging folder is renamed into place, then the
folder that received it is flushed (``sync_dir``). A rename flushed before its data
could leave a record naming bytes that never reached the disk; a rename not flushed
at all can vanish after the task was reported a success. A sealed tree is deleted
with ``remove``.

**Verifying** (``verify``) compares a folder with a manifest and lists the problems in
words a person reads: ``missing``, ``sha256 differs``, ``link target differs``, ``not in
the manifest``, or why the folder holds something no manifest can hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from a_la_mode import AlamodeError

CHUNK = 1024 * 1024
_KINDS = {
    stat.S_IFIFO: "a fifo",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class OutputRefused(AlamodeError):
    """An output holds something that cannot be committed; ``path`` is relative to the
    output, ``why`` says what it is and what to do instead."""

    def __init__(self, path: str, why: str, *, task: str | None = None) -> None:
        self.path, self.why = path, why
        super().__init__(f"output {path!r} {why}", task=task)


@dataclass(frozen=True)
class ManifestEntry:
    """One file or kept link of an output; ``link`` is the target text of a link."""

    path: str
    size: int
    sha256: str
    link: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; ``link`` only for links, so a file's entry reads as before."""
        data: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.link is not None:
            data["link"] = self.link
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifestEntry:
        """An entry as ``to_json`` wrote it (entries without ``link`` are files);
        raises TypeError or ValueError when it is not one, including a path that is
        absolute or climbs out of the output (entry paths become paths on upload)."""
        entry = cls(**data)
        path = entry.path
        if not (isinstance(path, str) and isinstance(entry.sha256, str)) or (
            type(entry.size) is not int or not isinstance(entry.link, str | None)
        ):
            raise TypeError(f"manifest entry {data!r} is not text path, int size, text sha256")
        climbs = path in ("", ".", "..") or path.startswith(("/", "../"))
        if climbs or posixpath.normpath(path) != path:
            raise ValueError(f"manifest entry path {path!r} is not a path inside the output")
        return entry


def manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    """What an output holds, as one sha256: of every entry (path, size, sha256, link
    target) in manifest order. Two generations with the same digest hold the same
    bytes under the same names; a reader's record names its inputs' digests."""
    text = json.dumps([entry.to_json() for entry in entries], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(folder: str | os.PathLike[str]) -> tuple[ManifestEntry, ...]:
    """Every file and kept link under ``folder`` (the rules are in the module's
    docstring); raises ``OutputRefused`` for the first path, in path order, that
    cannot be kept."""
    entries, refused = _scan(os.fspath(folder))
    if refused:
        raise refused[0]
    return entries


def verify(folder: str | os.PathLike[str], entries: Iterable[ManifestEntry]) -> list[str]:
    """The problems of ``folder`` against the manifest ``entries``, one line each
    (``<path>: <problem>``), in manifest order, then what the manifest does not list;
    empty when the folder holds exactly what the manifest says."""
    if not os.path.lexists(folder):
        found, refused = (), []
    else:
        try:
            found, refused = _scan(os.fspath(folder))
        except OutputRefused as exc:  # a folder that cannot be read: nothing to compare
            return [f"{exc.path}: {exc.why}"]
    actual = {entry.path: entry for entry in found}
    expected = {entry.path: entry for entry in entries}
    unkept = {exc.path for exc in refused}  # said below, with the reason
    problems = []
    for path, entry in expected.items():
        now = actual.get(path)
        if now is None:
            if path not in unkept:
                problems.append(f"{path}: missing")
        elif now.link != entry.link:
            problems.append(f"{path}: link target differs")
        elif now.sha256 != entry.sha256:
            problems.append(f"{path}: sha256 differs")
    problems += [f"{path}: not in the manifest" for path in actual if path not in expected]
    problems += [f"{exc.path}: {exc.why}" for exc in refused]
    return problems


#: A flush slower than this is the disk's (its journal commit waits for the device):
#: the rest then run at once, and concurrent ones share a journal commit. A disk that
#: flushes faster (a volatile write cache) is done sooner one after another than
#: threads would start (one file: ~0.5 ms of CPU alone, ~1.3 ms with threads).
SLOW_FLUSH_S = 0.001


def seal(folder: str | os.PathLike[str], flushers: int = 16, slow_s: float = SLOW_FLUSH_S) -> None:
    """Flush everything under ``folder`` (the staging folder about to be renamed) to
    disk and make it read-only: files 0444 (0555 when executable), folders 0555, links
    as they are (Linux has no link modes; a link is flushed with its folder). Every
    file and folder is flushed before it returns.

    The first file (else folder) is fsynced alone; when that took longer than ``slow_s``
    seconds, ``flushers`` threads fsync the rest at once (1: one after another),
    otherwise they follow one after another.

    ``folder`` itself keeps its mode: moving a folder to another parent needs write
    permission on the folder (its ``..`` entry changes), so a sealed attempt can still
    be renamed into place and later moved to quarantine. Removing a sealed tree needs
    ``remove``.

    A file with a hard link outside ``folder`` (an input's file, a user's file) is
    copied to an inode of its own first: making it read-only would change a file that
    is not the output's, and the output could still change through the other name
    (whoever owns that file can make it writable again).
    """
    root = os.fspath(folder)
    tree = list(_tree(root))
    _refuse_unsealable(tree)
    tree = _own_copies(root, tree)
    files = [(os.path.join(root, rel), st) for rel, st in tree if stat.S_ISREG(st.st_mode)]
    folders = [(rel, st) for rel, st in tree if stat.S_ISDIR(st.st_mode)]
    # Modes first: the first fsync then carries every change in one journal commit.
    for rel, st in folders:
        if rel and stat.S_IMODE(st.st_mode) != 0o555:  # ``folder`` itself is ""
            os.chmod(os.path.join(root, rel), 0o555)
    # Where the disk flushes for real, all at once: ext4 and xfs join concurrent fsyncs
    # into one journal commit, where one after another each waits for its own (20 small
    # files: ~6 ms, not ~80 ms).
    # Folders with their files: no order among them matters, as nothing names the tree
    # until the rename that follows, and each fsync covers what it flushes when it ends.
    jobs = [(_flush_file, file) for file in files]
    jobs += [(_fsync, os.path.join(root, rel)) for rel, _st in folders]
    # A file's flush is timed: a folder's can return at once where a file's goes to the
    # server (NFS), and on a local disk a file's carries the journal commit.
    started = time.monotonic()
    if jobs:
        _run(jobs.pop(0))
    slow = time.monotonic() - started > slow_s
    if slow and flushers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(min(len(jobs), flushers)) as pool:
            list(pool.map(_run, jobs))
    else:
        for job in jobs:
            _run(job)


def _run(job: tuple[Any, Any]) -> None:
    function, argument = job
    function(argument)


def sync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries to disk: after a rename, the folder that received it
    (and its parent too if that folder was just created), so the rename outlives a
    power loss. The renamed tree must have been flushed (``seal``) before the rename."""
    _fsync(path)


def remove(folder: str | os.PathLike[str]) -> None:
    """Delete a tree that may be sealed: a read-only folder inside it is made
    writable by its owner when deleting in it fails (root needs no such step, other
    users do). Folders outside the tree are never changed; other errors are raised."""

    if os.path.lexists(folder) and (os.path.islink(folder) or not os.path.isdir(folder)):
        os.unlink(folder)  # a single file or link: nothing to walk
        return
    top = os.path.abspath(folder)

    def writable_parent(func: Any, path: str, exc: Any) -> None:
        error = exc if isinstance(exc, BaseException) else exc[1]  # 3.12 passes it whole
        parent = os.path.dirname(os.path.abspath(path))
        if not isinstance(error, PermissionError) or not _inside(parent, top):
            raise error
        os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
        func(path)

    hook = "onexc" if sys.version_info >= (3, 12) else "onerror"
    shutil.rmtree(folder, **{hook: writable_parent})


# --- walking ------------------------------------------------------------------------------


def _scan(root: str) -> tuple[tuple[ManifestEntry, ...], list[OutputRefused]]:
    """The entries that may be kept and the refusals, each sorted by path."""
    entries, refused = [], []
    for rel, st in _tree(root):
        try:
            if stat.S_ISREG(st.st_mode):
                entries.append(_file_entry(root, rel))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(_link_entry(root, rel))
            elif not stat.S_ISDIR(st.st_mode):
                raise OutputRefused(rel, _special(st))
        except OutputRefused as exc:
            refused.append(exc)
    return tuple(sorted(entries, key=_order)), sorted(refused, key=_order)


def _tree(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every path under ``root`` with its ``lstat``, children before their folder and
    ``root`` last as ``""``. Links are never followed; an unreadable folder is refused
    (``os.walk`` would skip it and a manifest would silently miss its files)."""

    def fail(exc: OSError) -> None:
        rel = os.path.relpath(exc.filename, root).replace(os.sep, "/")
        raise OutputRefused(rel, f"cannot be read ({exc.strerror})") from exc

    for here, folders, files in os.walk(root, topdown=False, onerror=fail, followlinks=False):
        rel_here = os.path.relpath(here, root).replace(os.sep, "/")
        prefix = "" if rel_here == "." else rel_here + "/"
        for name in files + folders:
            st = os.lstat(os.path.join(here, name))
            if not stat.S_ISDIR(st.st_mode):  # folders come as their own ``here``
                yield prefix + name, st
        # ``root`` is named by the caller: a link there is followed, as a path would be.
        yield prefix.rstrip("/"), (os.lstat(here) if prefix else os.stat(here))


def _file_entry(root: str, rel: str) -> ManifestEntry:
    digest, size = hashlib.sha256(), 0
    try:
        with open(os.path.join(root, rel), "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise OutputRefused(rel, f"cannot be read ({exc.strerror})") from exc
    return ManifestEntry(rel, size, digest.hexdigest())


def _link_entry(root: str, rel: str) -> ManifestEntry:
    """A kept link's entry, or ``OutputRefused`` saying why the link cannot be kept."""
    path = os.path.join(root, rel)
    text = os.readlink(path)
    if os.path.isabs(text):
        raise OutputRefused(rel, f"is a link to the absolute path {text!r}; {_LINKS}")
    # Read as text from the link's folder: it must not climb out even to come back, as
    # ``../data/x`` would, which breaks once the output is copied under another name.
    where = posixpath.normpath(posixpath.join(posixpath.dirname(rel), text))
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if where == ".." or where.startswith("../") or not _inside(real, real_root):
        raise OutputRefused(rel, f"is a link leaving the output ({text!r}); {_LINKS}")
    if not os.path.exists(path):  # follows the whole chain: False for a loop too
        raise OutputRefused(rel, f"is a dangling link ({text!r} does not exist)")
    if os.path.isdir(real) and _inside(os.path.realpath(os.path.dirname(path)), real):
        # Anything that follows links (a copy, a search) would walk it forever.
        raise OutputRefused(rel, f"is a link to a folder holding it ({text!r}), a cycle")
    data = os.fsencode(text)
    return ManifestEntry(rel, len(data), hashlib.sha256(data).hexdigest(), link=text)


_LINKS = "only relative links to something inside the output are kept; copy it instead"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _special(st: os.stat_result) -> str:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a file, folder or link")
    return f"is {kind}; an output holds files, folders and links only"


def _order(item: ManifestEntry | OutputRefused) -> list[str]:
    # Component by component, as pathlib sorts: "a/b" before "a-b".
    return item.path.split("/")


# --- sealing ------------------------------------------------------------------------------


def _fsync(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse_unsealable(tree: list[tuple[str, os.stat_result]]) -> None:
    """Refuse special files (opening a fifo would block) before anything is changed."""
    for rel, st in tree:
        if stat.S_IFMT(st.st_mode) not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            raise OutputRefused(rel, _special(st))


def _own_copies(root: str, tree: list[tuple[str, os.stat_result]]) -> list:
    """The tree, after every file that shares its inode with a path outside it (a hard
    link) got an inode of its own: a copy beside it, renamed over it. Through the
    other name, the committed bytes could be changed by whoever owns that file,
    read-only or not (its owner can chmod it back)."""
    inside: dict[tuple[int, int], int] = {}
    for _rel, st in tree:
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            inside[st.st_dev, st.st_ino] = inside.get((st.st_dev, st.st_ino), 0) + 1
    result = []
    for rel, st in tree:
        key = (st.st_dev, st.st_ino)
        if key in inside and inside[key] < st.st_nlink:
            path = os.path.join(root, rel)
            copy = f"{path}.alamode-copy"
            shutil.copy2(path, copy)
            os.replace(copy, path)
            st = os.lstat(path)
        result.append((rel, st))
    return result


def _flush_file(file: tuple[str, os.stat_result]) -> None:
    """Set a file's mode (0555 when executable, else 0444), then fsync it so the mode
    is flushed too; the mode is left alone when right already (a file linked from a
    committed input may belong to another user)."""
    path, st = file
    mode = 0o555 if st.st_mode & 0o111 else 0o444
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
