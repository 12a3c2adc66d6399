"""From a pipeline's meta to the arguments of an Airflow DAG.

Known keys (all optional): ``dag_id``, ``schedule`` (cron string or preset such as
``@daily``; absent means manual runs only), ``start_date`` (ISO date), ``catchup`` (0/1),
``tags`` (list), ``description``, ``doc_md``, ``max_active_runs``, ``max_active_tasks``,
``dagrun_timeout`` (seconds), ``on_failure`` (notifiers of a failed run), ``deadline``
(deadline alerts), and ``cwd`` (where commands run, relative to the encoded file's
folder). The task settings (``defaults``, ``tasks``, and the older ``retries`` and
``owner``) are read by ``operating``. Other keys are kept in the file, ignored, and
reported once in the log.

Every value Airflow would refuse is refused here, naming the key, so that the file
becomes its own broken DAG instead of an import error of the loader module that names
no file. A pipeline with partitioned tasks is scheduled by a *data-interval* timetable
(``CronDataIntervalTimetable``): Airflow itself then gives every run, scheduled, backfilled
or manual, the interval [start, end) of one period of the schedule, and its UI shows the
same interval the commands see. Other pipelines keep Airflow's default for a cron
string (a trigger timetable, or what ``[scheduler] create_cron_data_intervals`` says).
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
from alamode_airflow import _compat
from alamode_airflow._compat import AirflowTimetableInvalid
from alamode_airflow.operating import (
    DEFAULTS,
    LEGACY_DEFAULTS,
    TASK_SETTINGS,
    TASKS,
    at_least,
    seconds,
    text,
)

log = logging.getLogger(__name__)

DEFAULT_START = "2024-01-01"
TAG = "alamode"
#: Meta keys read elsewhere: by the factory, by ``partitions``, and by ``operating``.
ENGINE_KEYS = frozenset(
    {"cwd", "runner", "partition", DIGEST_KEY, DEFAULTS, TASKS, *LEGACY_DEFAULTS}
)
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]+")
#: Schedules with no period: their runs have a zero-width data interval.
NOT_PERIODIC = frozenset({"@once", "@continuous"})
TAG_MAX_LEN = 100  # Airflow's limit
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


def schedule(meta: Mapping[str, Any], partitioned: bool, timezone: Any) -> Any:
    """The DAG's ``schedule``: meta ``schedule`` checked as Airflow's timetable would
    check it, and for a partitioned pipeline a data-interval timetable of it."""
    value = _typed(meta, "schedule", str)
    if partitioned and (value is None or value in NOT_PERIODIC):
        raise SpecValueError(
            "a pipeline with partitioned tasks needs a periodic schedule (a cron expression"
            " or a preset such as '@daily'): each run's partition is one period of it",
            key="meta.schedule",
        )
    if value is None or value in NOT_PERIODIC:
        return value
    # Looked up here, not imported with the module: only a cron schedule needs them.
    kind = _compat.CronDataIntervalTimetable if partitioned else _compat.CronTriggerTimetable
    timetable = kind(value, timezone=timezone)
    try:
        timetable.validate()
    except AirflowTimetableInvalid as exc:
        raise SpecValueError(
            f"{value!r} is not a cron expression or preset: {exc}", key="meta.schedule"
        ) from None
    return timetable if partitioned else value


def _notifiers(value: Any, key: str, task: None) -> list[Any]:
    from alamode_airflow.notify import notifiers

    return notifiers(value, key=key)


def _deadlines(value: Any, key: str, task: None) -> list[Any]:
    from alamode_airflow.notify import deadline_alerts

    return deadline_alerts(value, key=key)


#: DAG-level settings of how runs are operated: meta key -> its check, which returns
#: the DAG argument's value (``ARGUMENT`` renames).
RUN_SETTINGS = {
    "max_active_runs": at_least(1),
    "max_active_tasks": at_least(1),
    "dagrun_timeout": seconds(1),
    "doc_md": text,
    "on_failure": _notifiers,
    "deadline": _deadlines,
}
ARGUMENT = {"on_failure": "on_failure_callback"}


def _tags(meta: Mapping[str, Any]) -> list[str]:
    tags = [str(tag) for tag in _typed(meta, "tags", list, [])]
    for tag in tags:
        if len(tag) > TAG_MAX_LEN:
            raise SpecValueError(
                f"tag {tag[:20]!r}... is longer than {TAG_MAX_LEN} characters", key="meta.tags"
            )
    return [TAG, *tags]


def dag_settings(
    meta: Mapping[str, Any], default_dag_id: str, partitioned: bool = False
) -> DagSettings:
    """The DAG's id and keyword arguments for ``meta``; raises SpecValueError naming the
    key for a value of the wrong type or one Airflow refuses. ``partitioned``: whether
    the pipeline has partitioned tasks (see ``schedule``)."""
    dag_id = _typed(meta, "dag_id", str, default_dag_id)
    if not _DAG_ID.fullmatch(dag_id) or len(dag_id) > 250:
        raise SpecValueError(f"{dag_id!r} is not a valid Airflow dag_id", key="meta.dag_id")
    start = _typed(meta, "start_date", str, DEFAULT_START)
    try:
        start_date = pendulum.parse(start, tz="UTC")
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise SpecValueError(f"not a date: {exc}", key="meta.start_date") from None
    if not isinstance(start_date, pendulum.DateTime):
        raise SpecValueError(f"{start!r} is not a date", key="meta.start_date")
    catchup = _typed(meta, "catchup", int, 0)
    if catchup not in (0, 1):
        raise SpecValueError(f"must be 0 or 1, not {catchup}", key="meta.catchup")
    kwargs = {
        "dag_id": dag_id,
        "schedule": schedule(meta, partitioned, start_date.timezone),
        "start_date": start_date,
        "catchup": bool(catchup),
        "tags": _tags(meta),
        "description": _typed(meta, "description", str),
    }
    for key, check in RUN_SETTINGS.items():
        if key in meta:
            kwargs[ARGUMENT.get(key, key)] = check(meta[key], f"meta.{key}", None)
    known = set(kwargs) | set(RUN_SETTINGS) | {"start_date"} | ENGINE_KEYS
    unknown = tuple(sorted(set(meta) - known))
    return DagSettings(dag_id, kwargs, unknown)


def report_once(file: str, key: str, message: str) -> None:
    """Log ``message`` about ``key`` of ``file`` once per process (files are re-parsed
    every few seconds; the log would otherwise say it every time)."""
    if (file, key) not in _reported:
        _reported.add((file, key))
        log.warning("%s: %s", file, message)


def report_unknown(file: str, settings: DagSettings) -> None:
    """Log each unknown meta key of a file once per process."""
    for key in settings.unknown:
        report_once(file, key, f"meta key {key!r} is not used by the Airflow engine; ignored")


def report_spec_settings(file: str, task: str, spec: Mapping[str, Any]) -> None:
    """Say once where a spec's ``retries`` or ``timeout`` belongs from now on, and that
    a spec key named like an execution setting (``queue``, ``pool``) is not one."""
    for key in sorted(set(spec) & {"retries", "timeout", *TASK_SETTINGS}):
        if key in ("retries", "timeout"):
            setting = "execution_timeout" if key == "timeout" else key
            said = f"change it through meta tasks.{task}.{setting}, which recomputes nothing"
        else:
            said = f"it is not an execution setting there: did you mean meta tasks.{task}.{key}?"
        report_once(
            file,
            f"tasks.{task}.{key}",
            f"task {task!r}: spec key {key!r} is part of its output ID; {said} (see the README)",
        )
