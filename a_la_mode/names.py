"""Task names: exactly what Airflow accepts as a task id, in ASCII."""

from __future__ import annotations

import re

from a_la_mode.errors import TaskNameError

MAX_NAME = 250
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_name(name: object, file: str | None = None) -> str:
    """Return ``name`` if it is a valid task name, else raise TaskNameError.

    >>> check_name("edge_enhance")
    'edge_enhance'
    """
    if not isinstance(name, str):
        raise TaskNameError(f"task name must be a str, not {type(name).__name__}", file=file)
    if not _NAME.fullmatch(name):
        raise TaskNameError(
            "not a valid Airflow task id: use letters, digits, '_', '-' and '.'",
            file=file,
            task=name,
        )
    if len(name) > MAX_NAME:
        raise TaskNameError(
            f"name is {len(name)} characters; Airflow allows at most {MAX_NAME}",
            file=file,
            task=name[:40] + "...",
        )
    return name
