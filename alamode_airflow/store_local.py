"""The commit protocol on a local root: a staging folder, one rename, and ``flock``.

An attempt writes into ``staging/<output id>.<random>/data/``. To commit, the engine
writes ``record.json`` beside the data, flushes and seals the whole folder (every file
and folder fsynced, then made read-only), renames it to ``objects/<id>/<generation>``
and flushes ``objects/<id>``: after a power loss at any point, a record is never found
without its bytes, and a failed or killed attempt never appears under ``objects/``. The
rename fails if another attempt committed that generation first, so a generation is
written once.

Producers of an output hold its exclusive ``flock`` (``locks/<id>.lock``) while they
stage, run and commit; readers hold it shared while a command reads the output, so
garbage collection (which takes it exclusively, without waiting) leaves both alone.
Both first pass the output's gate (``gates/<id>``, held for a moment); a producer keeps
the gate until it has the lock, so readers arriving meanwhile wait behind it instead of
keeping it out for ever.
gc may unlink the lock file of an output that no longer exists while holding it; a
locker therefore checks, once it has the lock, that the path still names the file it
locked, and locks the new file otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from alamode_airflow.manifests import remove, seal, sync_dir
from alamode_airflow.records import SuccessRecord

if TYPE_CHECKING:
    from alamode_airflow.store import Committed, Found, Listing, OutputStore


class LocalBackend:
    """Rename-and-flock commits under a folder of this machine."""

    def __init__(self, store: OutputStore) -> None:
        from alamode_airflow.store import Found

        self.store = store
        self.path = Path(store.root.path)
        # A rename is atomic: a generation folder without its record is damage.
        self.without_record: Found = Found.CORRUPT

    def listing(self, output_id: str) -> Listing:
        from alamode_airflow.store import Listing

        try:
            return Listing.of(os.listdir(self.path / "objects" / output_id))
        except (FileNotFoundError, NotADirectoryError):
            return Listing.of(())

    def listings(self, output_ids: list[str]) -> dict[str, Listing]:
        """None up front: a local listing is one ``listdir``, made by each lookup in
        its own thread."""
        return {}

    def packed(self, name: str | None) -> contextlib.AbstractContextManager[None]:
        """Nothing: a local record is read without a round trip."""
        return contextlib.nullcontext()

    def receipt(self, output_id: str, generation: int, keys) -> None:
        """None: a local commit leaves no receipt (its record costs a file read)."""
        return None

    def read_record(self, output_id: str, generation: int, etag: str | None = None) -> str:
        from alamode_airflow.store import RECORD

        return (self.path / "objects" / output_id / str(generation) / RECORD).read_text()

    def has_data(self, record: SuccessRecord, listed) -> bool:
        folder = self.path / "objects" / record.output_id / str(record.generation)
        return (folder / record.data_path).is_dir()

    @contextlib.contextmanager
    def locked(self, output_id: str, shared: bool, claimant, waiting, presumed_dead, busy):
        with contextlib.ExitStack() as holding:
            # Everyone passes the output's gate; a producer keeps it until it holds the
            # lock, so readers that come after it queue behind it. flock alone keeps
            # granting shared locks while an exclusive one waits: a widely read output
            # could wait for ever to be rebuilt.
            with self._gate(output_id):
                mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
                held = holding.enter_context(self._flock(output_id, mode))
            assert held
            yield

    @contextlib.contextmanager
    def _gate(self, output_id: str) -> Iterator[None]:
        gates = self.path / "gates"
        gates.mkdir(parents=True, exist_ok=True)
        with open(gates / output_id, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def busy(self, output_id: str, claimant, presumed_dead) -> None:
        return None  # a waiting producer blocks in flock; there is nothing to defer to

    def try_locked(self, output_id: str) -> contextlib.AbstractContextManager[bool]:
        return self._flock(output_id, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @contextlib.contextmanager
    def _flock(self, output_id: str, mode: int) -> Iterator[bool]:
        locks = self.path / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{output_id}.lock"
        while True:
            with open(path, "a") as handle:
                try:
                    fcntl.flock(handle, mode)
                except BlockingIOError:
                    yield False
                    return
                try:
                    if _same_file(handle.fileno(), path):
                        yield True
                        return
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            # gc unlinked the file we waited on: lock the one now at that path.

    def stage(self, output_id: str) -> Path:
        parent = self.path / "staging"
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{output_id}.", dir=parent))
        # mkdtemp makes it 0700; committed, it is read by every user the umask allows
        # (other workers' users, people running alamode status).
        umask = os.umask(0)
        os.umask(umask)
        folder.chmod(0o755 & ~umask)
        return folder

    def data_path(self, staging: Path) -> str:
        return "data"

    def discard(self, staging: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            remove(staging)

    def commit(self, staging: Path, record: SuccessRecord) -> Committed:
        from alamode_airflow.store import RECORD, Committed

        (staging / RECORD).write_text(record.dumps())
        seal(staging)
        target = Path(self.store.object_dir(record.output_id, record.generation).path)
        created = not target.parent.is_dir()
        target.parent.mkdir(parents=True, exist_ok=True)
        if created:
            sync_dir(target.parent.parent)
        try:
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            self.discard(staging)
            return Committed.ALREADY
        sync_dir(target.parent)
        return Committed.COMMITTED

    def mark(self, relative: str) -> None:
        """An empty file at ``relative`` under the root (an index entry)."""
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def bury(self, output_id: str, generation: int) -> None:
        from alamode_airflow.store import VOID

        folder = Path(self.store.object_dir(output_id).path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{generation}{VOID}").touch()
        sync_dir(folder)

    def quarantine(self, output_id: str, generation: int) -> None:
        source = Path(self.store.object_dir(output_id, generation).path)
        target = self.path / "quarantine" / f"{output_id}.{generation}.{uuid.uuid4().hex[:8]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # another task moved it first
            os.rename(source, target)
            os.utime(target)  # gc ages quarantine entries from when they were set aside

    def fetch(self, output_id: str, data, into: Path, record) -> Path:
        return Path(data.path)


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


WaitCallback = Callable[..., None]
