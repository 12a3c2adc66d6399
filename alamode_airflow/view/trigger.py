"""A rebuild run, created as Airflow's own trigger endpoint creates a manual run
(``POST /api/v2/dags/{dag_id}/dagRuns``, ``trigger_dag_run``): the same checks of the
DAG (it exists, has no import errors, allows manual runs, has a serialized version, its
params accept the conf; each refusal an ``AlamodeError``, answered 400), the same
run id, logical date and data interval (the interval Airflow infers for a manual run
now: the last complete period, for a partitioned pipeline), with conf
``{"rebuild": [tasks]}``, which the plan task reads (``runs.requested_rebuilds``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from a_la_mode import AlamodeError


def trigger_rebuild(
    dag_bag: Any, dag_id: str, tasks: list[str], user: Any, check: Callable[[Any, list[str]], Any]
) -> tuple[str, bool]:
    """The new run's id, and whether the DAG is paused (the run waits until it is not);
    ``check(dag, tasks)`` refuses tasks the DAG does not have (AlamodeError)."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.exceptions import ParamValidationError
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    with create_session() as session:
        model, dag = _triggerable(dag_bag, dag_id, session)
        check(dag, tasks)
        body = TriggerDAGRunPostBody(logical_date=timezone.utcnow(), conf={"rebuild": tasks})
        try:
            params = body.validate_context(dag)
            run = dag.create_dagrun(
                run_id=params["run_id"],
                logical_date=params["logical_date"],
                data_interval=params["data_interval"],
                run_after=params["run_after"],
                conf=params["conf"],
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.UI,
                triggering_user_name=user.get_name(),
                state=DagRunState.QUEUED,
                partition_key=params["partition_key"],
                partition_date=params["partition_date"],
                session=session,
            )
        except (ParamValidationError, ValueError) as exc:
            raise AlamodeError(f"DAG {dag_id!r} refused the rebuild run: {exc}") from exc
        return run.run_id, bool(model.is_paused)


def _triggerable(dag_bag: Any, dag_id: str, session: Any) -> tuple[Any, Any]:
    """The DAG's model and newest serialized version, after the checks Airflow's
    endpoint makes before it creates a manual run."""
    from airflow.models.dag import DagModel
    from airflow.utils.types import DagRunType

    model = session.scalar(select(DagModel).where(~DagModel.is_stale, DagModel.dag_id == dag_id))
    if model is None:
        raise AlamodeError(f"no DAG {dag_id!r}")
    if model.has_import_errors:
        raise AlamodeError(f"DAG {dag_id!r} has import errors and cannot be triggered")
    allowed = model.allowed_run_types
    if allowed is not None and DagRunType.MANUAL not in allowed:
        raise AlamodeError(f"DAG {dag_id!r} does not allow manual runs, so no rebuild run")
    dag = dag_bag.get_latest_version_of_dag(dag_id, session=session)
    if dag is None:
        raise AlamodeError(f"DAG {dag_id!r} has not been parsed yet (no serialized version)")
    return model, dag


def rebuild_interval(timetable: Any, now: Any = None) -> tuple[Any, Any] | None:
    """The data interval (datetimes) a rebuild run triggered ``now`` gets, as the
    trigger endpoint infers it for a manual run; None when the timetable gives none.
    A partitioned task of the run rebuilds its output of that interval only."""
    from airflow.utils import timezone

    interval = timetable.infer_manual_data_interval(run_after=now or timezone.utcnow())
    return None if interval is None else (interval.start, interval.end)
