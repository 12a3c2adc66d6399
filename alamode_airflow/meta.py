"""From a pipeline's meta to the arguments of an Airflow DAG.

Known keys (all optional): ``dag_id``, ``schedule`` (cron string or preset such as
``@daily``; absent means manual runs only), ``start_date`` (ISO date), ``catchup`` (0/1),
``tags`` (list), ``description``, ``max_active_runs``, ``retries``, ``owner``, and ``cwd``
(where commands run, relative to the encoded file's folder). Other keys are kept in the
file, ignored, and reported once in the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pendulum

from a_la_mode import SpecValueError
from a_la_mode.ids import DIGEST_KEY

log = logging.getLogger(__name__)

DEFAULT_START = "2024-01-01"
TAG = "alamode"
ENGINE_KEYS = frozenset({"cwd", "runner", "partition", DIGEST_KEY})
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]+")
_reported: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class DagSettings:
    dag_id: str
    kwargs: Mapping[str, Any]
    unknown: tuple[str, ...]


def _typed(meta: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = meta.get(key, default)
    # A loaded pipeline's meta is frozen: its lists are tuples.
    accepted = (list, tuple) if kind is list else kind
    if value is not None and not isinstance(value, accepted):
        raise SpecValueError(
            f"must be a {kind.__name__}, not {type(value).__name__}", key=f"meta.{key}"
        )
    return value


def dag_settings(meta: Mapping[str, Any], default_dag_id: str) -> DagSettings:
    """The DAG's id and keyword arguments for ``meta``; raises SpecValueError naming the
    key for a value of the wrong type."""
    dag_id = _typed(meta, "dag_id", str, default_dag_id)
    if not _DAG_ID.fullmatch(dag_id) or len(dag_id) > 250:
        raise SpecValueError(f"{dag_id!r} is not a valid Airflow dag_id", key="meta.dag_id")
    start = _typed(meta, "start_date", str, DEFAULT_START)
    try:
        start_date = pendulum.parse(start, tz="UTC")
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise SpecValueError(f"not a date: {exc}", key="meta.start_date") from None
    default_args = {"owner": _typed(meta, "owner", str, "alamode")}
    retries = _typed(meta, "retries", int)
    if retries is not None:
        default_args["retries"] = retries
    tags = _typed(meta, "tags", list, [])
    kwargs = {
        "dag_id": dag_id,
        "schedule": _typed(meta, "schedule", str),
        "start_date": start_date,
        "catchup": bool(_typed(meta, "catchup", int, 0)),
        "tags": [TAG, *(str(tag) for tag in tags)],
        "description": _typed(meta, "description", str),
        "default_args": default_args,
    }
    max_runs = _typed(meta, "max_active_runs", int)
    if max_runs is not None:
        kwargs["max_active_runs"] = max_runs
    known = set(kwargs) | set(default_args) | {"start_date", "retries"} | ENGINE_KEYS
    unknown = tuple(sorted(set(meta) - known))
    return DagSettings(dag_id, kwargs, unknown)


def report_unknown(file: str, settings: DagSettings) -> None:
    """Log each unknown meta key of a file once per process (files are re-parsed often)."""
    for key in settings.unknown:
        if (file, key) not in _reported:
            _reported.add((file, key))
            log.warning("%s: meta key %r is not used by the Airflow engine; ignored", file, key)
