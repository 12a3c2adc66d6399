"""Every Airflow import the engine uses, in one place: Airflow 3's task SDK.

When Airflow moves a name, only this module changes. Names that cost a parse or a task
process time it rarely needs (triggers: only a deferring task; cron timetables: only
where a schedule is checked; the secrets masker: only a task writing its record) are
imported when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from airflow.sdk import (
    DAG,
    Asset,
    AsyncCallback,
    BaseNotifier,
    BaseOperator,
    BaseOperatorLink,
    DeadlineAlert,
    DeadlineReference,
    ObjectStoragePath,
    Param,
    TriggerRule,
    conf,
    get_parsing_context,
)
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowSkipException,
    AirflowTimetableInvalid,
    DownstreamTasksSkipped,
)

if TYPE_CHECKING:
    from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable
    from airflow.sdk._shared.secrets_masker import redact
    from airflow.triggers.base import BaseTrigger, TriggerEvent

_LAZY = {
    "BaseTrigger": "airflow.triggers.base",
    "TriggerEvent": "airflow.triggers.base",
    "CronDataIntervalTimetable": "airflow.sdk",
    "CronTriggerTimetable": "airflow.sdk",
    # The masker the task runner redacts rendered template fields with (Rendered
    # Template tab), holding every secret the task process registered (Variables,
    # Connections, mask_secret): private in Airflow 3, hence here.
    "redact": "airflow.sdk._shared.secrets_masker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parsing_for_task() -> tuple[str, str] | None:
    """(dag_id, task_id) when this process is Airflow's task runner parsing the DAG
    file to run that task; None for every other parse.

    Airflow's parsing context says so (``get_parsing_context``), but its variables stay
    set after the parse, and every program the task runs inherits them (an ``airflow
    tasks test`` that a BashOperator runs): the task runner also binds the task to its
    log context before it parses (structlog's context variables, which a new
    interpreter does not inherit; a child forked without an exec does, and builds the
    task alone as its parent did), and both must name the task."""
    context = get_parsing_context()
    if not (context.dag_id and context.task_id):
        return None
    import structlog.contextvars  # imported by Airflow's logging already

    bound = structlog.contextvars.get_contextvars()
    if (bound.get("dag_id"), bound.get("task_id")) != (context.dag_id, context.task_id):
        return None
    return context.dag_id, context.task_id


__all__ = [
    "DAG",
    "AirflowException",
    "AirflowSkipException",
    "AirflowTimetableInvalid",
    "Asset",
    "AsyncCallback",
    "BaseNotifier",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseTrigger",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DeadlineAlert",
    "DeadlineReference",
    "DownstreamTasksSkipped",
    "ObjectStoragePath",
    "Param",
    "TriggerEvent",
    "TriggerRule",
    "conf",
    "get_parsing_context",
    "parsing_for_task",
    "redact",
]
