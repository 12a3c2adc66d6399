"""Listing a folder of the store, local or object store, the same way."""

from __future__ import annotations

from alamode_airflow._compat import ObjectStoragePath


def child_names(folder: ObjectStoragePath) -> list[str]:
    """The names in ``folder``; none if it does not exist. On an object store the
    listing is fetched afresh: other workers write there, and fsspec caches listings."""
    if not is_local(folder):
        folder.fs.invalidate_cache(folder.path)
    try:
        return [child.name for child in folder.iterdir()]
    except (FileNotFoundError, NotADirectoryError):  # an object store: no such prefix
        return []


def is_local(root: ObjectStoragePath) -> bool:
    """Whether ``root`` is a folder on this machine (no protocol, or ``file://``): the
    one test of what counts as a local root."""
    return root.protocol in ("", "file")
