"""Every Airflow import the engine uses, in one place: Airflow 3's task SDK.

When Airflow moves a name, only this module changes.
"""

from __future__ import annotations

from airflow.sdk import (
    DAG,
    Asset,
    AsyncCallback,
    BaseNotifier,
    BaseOperator,
    BaseOperatorLink,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    ObjectStoragePath,
    Param,
    TriggerRule,
    conf,
)
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowSkipException,
    AirflowTimetableInvalid,
    DownstreamTasksSkipped,
)
from airflow.triggers.base import BaseTrigger, TriggerEvent

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
]
