"""What a committed output is made of, and making it durable and read-only."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


def seal(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (children first), then make them
    read-only."""
    for dirpath, _dirs, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(path, 0o444)
        sync_dir(Path(dirpath))
        os.chmod(dirpath, 0o555)


def sync_dir(path: Path) -> None:
    """fsync a folder, so that renames and creations in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Delete a folder that may have been sealed (read-only folders cannot be emptied
    by a user other than root): make its folders writable, then remove it."""
    if not os.path.lexists(path):
        return
    for dirpath, _dirs, _files in os.walk(path):
        os.chmod(dirpath, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)
