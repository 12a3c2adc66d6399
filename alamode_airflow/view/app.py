"""The provenance pages' FastAPI app, mounted by ``airflow api-server`` at ``/alamode``.

Every route is behind Airflow's own authentication and authorization
(``airflow.api_fastapi.core_api.security``): the user comes from the request's
``Authorization: Bearer`` token, else from the ``_token`` cookie Airflow's UI sets,
and a request with neither is answered 401 with no data. A DAG's pages need read
access to that DAG (its task instances, for an instance's page; its runs and task
instances, for a run's states), and detail another DAG's records only for a user who may
read that DAG. An output's page needs read access to the DAG that produced it, checked
on its record before its lineage is walked (an output the user may not read and one that
does not exist are the same 404), and leaves out the details of ancestors from DAGs the
user may not read. A rebuild needs the right to create runs of the DAG, the
same check as Airflow's own trigger endpoint, and passes ``guard``'s cross-site checks.

Routes are plain functions: FastAPI runs them in its thread pool, so a walk of the
store never blocks the server's event loop.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    requires_access_dag,
    requires_authenticated,
)
from airflow.api_fastapi.logging.decorators import action_logging
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from a_la_mode import AlamodeError
from alamode_airflow.store import OutputStore, check_output_id
from alamode_airflow.view import facts, forms, guard, pages, pictures, queries
from alamode_airflow.view.html import HEADERS
from alamode_airflow.view.source import NotOurs, dag_source, serialized_outputs, task_names

router = APIRouter()
READ_DAG = Depends(requires_access_dag(method="GET"))
READ_INSTANCES = Depends(
    requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE)
)
CREATE_RUNS = Depends(requires_access_dag(method="POST", access_entity=DagAccessEntity.RUN))


def create_app() -> FastAPI:
    """The app: its own DAG bag (the api-server's cached view of serialized DAGs)."""
    from airflow.api_fastapi.common.dagbag import create_dag_bag

    app = FastAPI(title="alamode provenance", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dag_bag = create_dag_bag()
    app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _error_page)
    app.add_exception_handler(queries.BadQuery, _bad_query)
    app.add_exception_handler(RequestValidationError, _bad_query)
    return app


async def _bad_query(request: Request, exc: Exception) -> HTMLResponse:
    """A malformed parameter: the page's own 400, naming it (not FastAPI's JSON 422)."""
    if isinstance(exc, RequestValidationError):
        message = "; ".join(
            f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors()
        )
    else:
        message = str(exc)
    return html(pages.message_page("bad request", message), 400)


async def _error_page(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
    """Refusals and misses as a page (the frame in Airflow's UI shows it), saying only
    what Airflow's own answer says."""
    title = {401: "not signed in", 403: "not allowed", 404: "not found"}.get(exc.status_code)
    page = pages.message_page(title or "error", str(exc.detail))
    return HTMLResponse(
        page, status_code=exc.status_code, headers={**HEADERS, **(exc.headers or {})}
    )


@functools.cache
def store() -> OutputStore:
    """The configured store, made once: an object store's client is reused."""
    return OutputStore.configured()


def links(request: Request) -> pages.Links:
    root = request.scope.get("root_path", "").rstrip("/")
    base = root[: -len("/alamode")] if root.endswith("/alamode") else ""
    return pages.Links(root or "/alamode", base)


def html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def serialized_dag(request: Request, dag_id: str, session) -> Any:
    dag = request.app.state.dag_bag.get_latest_version_of_dag(dag_id, session=session)
    if dag is None:
        raise HTTPException(404, f"no DAG {dag_id!r}")
    return dag


@router.get("/dags/{dag_id}", dependencies=[READ_DAG], response_class=HTMLResponse)
def dag_view(
    dag_id: str, request: Request, session: SessionDep, user: GetUserDep, run_id: str | None = None
):
    """Every task's output, and what the next run computes and why; with ``run_id``
    (the run page's view), each task's state in that run too."""
    if run_id is not None:
        _may_see_run(user, dag_id)
    dag = serialized_dag(request, dag_id, session)
    try:
        source = dag_source(dag)
        rows = facts.dag_rows(source.pipeline, store(), dag_id)
    except (NotOurs, AlamodeError) as exc:
        return html(pages.message_page(f"{dag_id}: no provenance", str(exc)), 404)
    run = None
    if run_id is not None:
        from airflow.models.taskinstance import TaskInstance as TI

        query = select(TI.task_id, TI.state).where(TI.dag_id == dag_id, TI.run_id == run_id)
        run = (run_id, {task: state for task, state in session.execute(query)})
    page = pages.dag_page(
        links(request),
        dag_id,
        rows,
        drift=source.drift,
        run=run,
        may_rebuild=_may(user, dag_id),
        readable=_readable(user, facts.row_dags(rows)),
    )
    return html(page)


@router.get(
    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
    dependencies=[READ_INSTANCES],
    response_class=HTMLResponse,
)
def instance_view(
    dag_id: str,
    run_id: str,
    task_id: str,
    request: Request,
    session: SessionDep,
    user: GetUserDep,
    map_index: str | None = None,
):
    """One task instance: what made it skip, or what it committed and read."""
    attempt = _attempt(session, dag_id, run_id, task_id, queries.map_index(map_index))
    dag = serialized_dag(request, dag_id, session)
    try:
        pipeline = dag_source(dag).pipeline
        ran = _run_outputs(request, session, dag_id, run_id).get(task_id)
        if task_id not in pipeline.tasks and ran is None:
            raise NotOurs(f"{task_id!r} produces no output: it is not a task of the pipeline")
        found = facts.instance_facts(pipeline, store(), task_id, run_id, dag_id, attempt, ran)
    except (NotOurs, AlamodeError) as exc:
        return html(pages.message_page(f"{task_id}: no provenance", str(exc)), 404)
    readable = _readable(user, facts.instance_dags(found))
    page = pages.instance_page(
        links(request), dag_id, run_id, attempt, found, _may(user, dag_id), readable
    )
    return html(page)


def _run_outputs(request: Request, session, dag_id: str, run_id: str) -> dict[str, str]:
    """task -> file output ID in the DAG version the run ran (the file may have changed
    since); empty when Airflow no longer has that version."""
    from airflow.models.dagrun import DagRun

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    dag = request.app.state.dag_bag.get_dag_for_run(run, session) if run is not None else None
    return serialized_outputs(dag) if dag is not None else {}


def _attempt(session, dag_id: str, run_id: str, task_id: str, map_index: int) -> facts.Attempt:
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.taskinstancehistory import TaskInstanceHistory as TIH

    key = (TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id)
    ti = session.scalar(select(TI).where(*key, TI.map_index == map_index))
    if ti is None:
        raise HTTPException(404, f"no task instance {task_id!r} in run {run_id!r} of {dag_id!r}")
    earlier = session.scalars(
        select(TIH.state).where(
            TIH.dag_id == dag_id,
            TIH.run_id == run_id,
            TIH.task_id == task_id,
            TIH.map_index == map_index,
        )
    ).all()
    run = ti.dag_run
    interval = (run.data_interval_start, run.data_interval_end) if run else None
    cleared = facts.was_cleared(earlier, ti.try_number or 0)
    return facts.Attempt(ti.state, ti.try_number or 0, ti.end_date, cleared, interval)


@router.get("/outputs/{output_id}", dependencies=[Depends(requires_authenticated())])
def output_view(
    output_id: str,
    request: Request,
    user: GetUserDep,
    verify: str | None = None,
    generation: str | None = None,
):
    """The output's lineage as a picture; ``?verify=1`` re-hashes every ancestor. Found
    and authorized before anything more is read; absent and forbidden are the same 404."""
    try:
        check_output_id(output_id)
    except AlamodeError as exc:
        return html(pages.message_page("not an output", str(exc)), 404)
    checking = verify not in (None, "", "0", "false")
    may_read = functools.cache(lambda dag_id: bool(_readable(user, {dag_id})))
    try:
        number = queries.generation(generation)
        found = facts.output_lineage(store(), output_id, number, checking, may_read)
    except facts.Hidden as exc:
        raise HTTPException(404, str(exc)) from None
    shown = [n for n in found.nodes if n.record is None or n.record.dag_id in found.readable]
    svg = pictures.lineage_svg(links(request), found.tree, found.nodes, found.readable)
    page = pages.output_page(
        links(request),
        output_id,
        shown,
        svg,
        verified=found.verified,
        hidden=len(found.nodes) - len(shown),
        refused=found.refused,
    )
    return html(page)


def _may_see_run(user, dag_id: str) -> None:
    """A run's task states need read access to the DAG's runs and task instances, as
    Airflow's own grid needs them; 403 otherwise."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    for entity in (DagAccessEntity.RUN, DagAccessEntity.TASK_INSTANCE):
        details = _details(dag_id)
        if not manager.is_authorized_dag(
            method="GET", access_entity=entity, details=details, user=user
        ):
            raise HTTPException(403, "Forbidden")


def _may(user, dag_id: str) -> bool:
    """Whether ``user`` may trigger ``dag_id`` (a rebuild), as Airflow decides."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=_details(dag_id), user=user
    )


def _details(dag_id: str) -> DagDetails:
    """What Airflow's own checks pass for a DAG (``requires_access_dag``)."""
    from airflow.models.dag import DagModel

    return DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))


def _readable(user, dag_ids: set[str]) -> set[str]:
    """The DAGs of ``dag_ids`` that ``user`` may read, each asked once."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    return {
        d
        for d in dag_ids
        if manager.is_authorized_dag(method="GET", details=_details(d), user=user)
    }


@router.get("/dags/{dag_id}/rebuild", dependencies=[CREATE_RUNS], response_class=HTMLResponse)
def rebuild_form(dag_id: str, request: Request, session: SessionDep, user: GetUserDep):
    """The confirmation page of a rebuild of the ``task`` query's tasks."""
    dag = serialized_dag(request, dag_id, session)
    tasks = request.query_params.getlist("task")
    try:
        asked = _asked(dag, tasks)
    except AlamodeError as exc:
        return html(pages.message_page("cannot rebuild", str(exc)), 400)
    token = guard.make_token(user.get_id(), dag_id)
    computed = _downstream(dag, asked)
    page = forms.confirm_page(
        links(request), dag_id, tasks, len(computed), token, _per_interval(dag, computed)
    )
    return html(page)


def _per_interval(dag: Any, computed: set[str]) -> forms.PerInterval | None:
    """Which of the ``computed`` tasks are partitioned, and the interval a run
    triggered now rebuilds for them."""
    from a_la_mode.partitions import partitioned
    from alamode_airflow.view.trigger import rebuild_interval

    try:
        tasks = sorted(computed & set(partitioned(dag_source(dag).pipeline)))
    except (NotOurs, AlamodeError):
        return None
    return forms.PerInterval(tasks, rebuild_interval(dag.timetable)) if tasks else None


@router.post(
    "/dags/{dag_id}/rebuild",
    dependencies=[CREATE_RUNS, Depends(action_logging())],
    response_class=HTMLResponse,
)
async def rebuild(dag_id: str, request: Request, user: GetUserDep):
    """Trigger a run of the DAG with conf ``{"rebuild": [tasks]}`` (the engine's
    rebuild), after the cross-site checks."""
    from airflow.configuration import conf

    form = await request.form()
    own = [str(request.base_url), conf.get("api", "base_url", fallback="")]
    if not guard.same_origin(request.headers, own):
        return html(pages.message_page("refused", "a rebuild must come from this server"), 403)
    if not guard.token_ok(str(form.get("csrf", "")), user.get_id(), dag_id):
        message = "the confirmation form expired or is not this user's: open it again"
        return html(pages.message_page("refused", message), 403)
    tasks = [str(task) for task in form.getlist("task")]
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_trigger, request, dag_id, tasks, user)


def _trigger(request: Request, dag_id: str, tasks: list[str], user) -> HTMLResponse:
    from alamode_airflow.view.trigger import trigger_rebuild

    try:
        run_id, paused = trigger_rebuild(request.app.state.dag_bag, dag_id, tasks, user, _asked)
    except AlamodeError as exc:
        return html(pages.message_page("cannot rebuild", str(exc)), 400)
    return html(forms.triggered_page(links(request), dag_id, run_id, tasks, paused), 201)


def _asked(dag: Any, tasks: list[str]) -> frozenset[str]:
    from alamode_airflow.runs import requested_rebuilds

    if not tasks:
        raise AlamodeError("name the tasks to rebuild")
    return requested_rebuilds({"rebuild": tasks}, task_names(dag))


def _downstream(dag: Any, asked: frozenset[str]) -> set[str]:
    """The tasks a rebuild of ``asked`` computes: those and what is downstream."""
    seen, stack = set(asked), list(asked)
    while stack:
        for task in dag.get_task(stack.pop()).downstream_task_ids:
            if task not in seen:
                seen.add(task)
                stack.append(task)
    return seen
