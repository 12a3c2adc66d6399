"""The pages' query parameters, parsed strictly: ASCII digits only (``str.isdigit`` and
``int`` accept ``"²"`` and other Unicode digits, and ``int`` then raises), and a
malformed value is a ``BadQuery``, which the app answers with its own 400 page naming
the parameter, never a 500 or FastAPI's JSON 422."""

from __future__ import annotations

import re

INTEGER = re.compile(r"-?[0-9]{1,18}", re.ASCII)
#: What Airflow's UI leaves in a task instance tab's URL for a task that is not mapped.
UNMAPPED = ("", "{MAP_INDEX}", "-1")


class BadQuery(ValueError):
    """A query parameter that is not what the page takes."""


def integer(value: str, name: str) -> int:
    if INTEGER.fullmatch(value) is None:
        raise BadQuery(f"{name} must be an integer, not {value[:40]!r}")
    return int(value)


def map_index(value: str | None) -> int:
    """The ``map_index`` query: -1 (not mapped) when absent or left as a placeholder."""
    if value is None or value in UNMAPPED:
        return -1
    index = integer(value, "map_index")
    if index < -1:
        raise BadQuery(f"map_index must be -1 or more, not {index}")
    return index


def generation(value: str | None) -> int | None:
    """The ``generation`` query of an output's page: None for the current one."""
    if value is None or value == "":
        return None
    number = integer(value, "generation")
    if number < 0:
        raise BadQuery(f"generation must be 0 or more, not {number}")
    return number
