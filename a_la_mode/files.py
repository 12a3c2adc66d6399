"""Reading and writing pipeline files safely: atomic writes, bounded reads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from a_la_mode.codec import MAX_VALUES
from a_la_mode.errors import FileFormatError, FileTooLargeError

#: Default for the largest file ``load`` reads; ALAMODE_MAX_FILE_BYTES overrides it.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def max_file_bytes() -> int:
    """The configured size limit for a pipeline file, in bytes."""
    return _limit("ALAMODE_MAX_FILE_BYTES", DEFAULT_MAX_BYTES, "bytes")


def max_file_values() -> int:
    """The configured budget of values a pipeline file may hold (``codec.MAX_VALUES``
    unless ALAMODE_MAX_FILE_VALUES says otherwise)."""
    return _limit("ALAMODE_MAX_FILE_VALUES", MAX_VALUES, "values")


def _limit(variable: str, default: int, unit: str) -> int:
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise FileFormatError(f"{variable} must be a number of {unit}, not {raw!r}") from None


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a
    rename, so a reader (such as Airflow's DAG processor) sees the old file or the new
    one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; a pipeline file is read by other users (Airflow's).
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_limited(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path``, refusing a file larger than ``limit`` before reading it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise FileTooLargeError(
                    f"file is {size} bytes, over the limit of {limit} "
                    "(set ALAMODE_MAX_FILE_BYTES to raise it)",
                    file=str(path),
                )
            # Read what fstat promised (plus one byte to notice growth) rather than
            # read(limit), which would allocate a buffer of the limit's size. Writers
            # replace files by rename, so a file does not change while it is read.
            data = handle.read(size + 1)
    except OSError as exc:
        raise FileFormatError(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    if len(data) > limit:
        raise FileTooLargeError(f"file grew past the limit of {limit} bytes", file=str(path))
    return data
