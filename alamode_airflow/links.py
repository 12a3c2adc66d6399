"""Links on our tasks in the Airflow UI, and the Assets that carry output IDs into
Airflow's own lineage views.

The **Output location** button is derived by the api-server from what a committed
attempt stores anyway (its asset event, else its record in XCom), not pushed by the
task: Airflow would otherwise push each link of each task as one more XCom after the
task ends, a round trip to the api-server and a database write per task attempt.
The plugin registers the link for the operators this package defines (``operators``);
a link of the same name registered by a plugin takes the place of the pushed one
wherever Airflow shows a task's links. The task process leaves its links out
(``pushes_link``).

The **Provenance** button opens the plugin's page about one task instance (under
``view.URL_PREFIX``): for a skipped task, which run produced the output it reused. Its URL
needs only the instance's key, so it is there for every instance of our operators,
skipped, failed or running alike (Airflow's UI asks for a task instance's links whatever
its state, and opens a link to its own origin in the same tab)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from alamode_airflow._compat import Asset, BaseOperator, BaseOperatorLink

ASSET_GROUP = "alamode"


#: Where the plugin's pages are mounted on the api-server, below ``[api] base_url``.
class OutputLocationLink(BaseOperatorLink):
    """The task's committed output (a path or object-store URL), shown as a button on
    the task instance once it has produced its output."""

    name = "Output location"

    @property
    def operators(self) -> list[type]:
        """The operators whose link the api-server derives (read by Airflow's plugin
        manager on the api-server only: imported when first asked)."""
        from alamode_airflow.containers import AlamodeDockerOperator, AlamodeKubernetesOperator
        from alamode_airflow.operators import AlamodeCommandOperator

        return [AlamodeCommandOperator, AlamodeDockerOperator, AlamodeKubernetesOperator]

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if isinstance(operator, BaseOperator):  # a task process: what it committed
            return getattr(operator, "committed_location", "")
        outlets = [(a.name, a.uri) for a in getattr(operator, "outlets", ()) if _is_asset(a)]
        return committed_location(
            ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index, outlets
        )


def _is_asset(outlet: Any) -> bool:
    return isinstance(getattr(outlet, "uri", None), str) and isinstance(outlet.name, str)


class ProvenanceLink(BaseOperatorLink):
    """The task instance's provenance page: what it produced or reused, and from which
    run. Only the api-server resolves it (the plugin registers it; the operators do not
    list it, so no task pushes it)."""

    name = "Provenance"

    @property
    def operators(self) -> list[type]:
        return OutputLocationLink().operators

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return provenance_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id)


def provenance_url(dag_id: str, run_id: str, task_id: str) -> str:
    """The path of a task instance's provenance page, each part quoted whole (a run ID
    holds ``:`` and ``+``), below the path of ``[api] base_url`` when Airflow is served
    under one."""
    from alamode_airflow.view import URL_PREFIX, base_path

    parts = ("dags", dag_id, "runs", run_id, "tasks", task_id)
    return base_path() + URL_PREFIX + "/" + "/".join(quote(part, safe="") for part in parts)


def pushes_link(operator_class: type) -> bool:
    """Whether tasks of ``operator_class`` push their link themselves: only operators
    the plugin does not list (subclasses defined elsewhere, which the api-server does
    not import)."""
    return operator_class not in OutputLocationLink().operators


def committed_location(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    outlets: Sequence[tuple[str, str]] = (),
) -> str:
    """Where the task instance's attempt committed its output, from the database (on
    the api-server): its asset event's ``location`` among the events of its
    ``outlets`` (exactly as the task showed it), else its success record in XCom under
    the configured storage root; "" when it committed nothing (skipped, failed, still
    running)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from alamode_airflow.operators import RECORD_XCOM

    with create_session() as session:
        if outlets and (
            location := _event_location(session, outlets, dag_id, run_id, task_id, map_index)
        ):
            return location
        query = XComModel.get_many(
            key=RECORD_XCOM, run_id=run_id, dag_ids=dag_id, task_ids=task_id, map_indexes=map_index
        )
        value = session.scalar(query.with_only_columns(XComModel.value))
    return _record_location(value) if value else ""


def _event_location(
    session, outlets, dag_id: str, run_id: str, task_id: str, map_index: int
) -> str:
    """The ``location`` of the newest event the task instance sent for one of its
    ``outlets``. Asked of those assets' events only: ``asset_event`` holds an event
    for every output ever committed and has no index on its source columns, so a
    query on those alone would read the whole table at every view of the link; an
    asset's events are found through Airflow's index on (asset, time), the asset
    through its unique (name, URI)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import and_, or_, select

    assets = select(AssetModel.id).where(
        or_(*(and_(AssetModel.name == name, AssetModel.uri == uri) for name, uri in outlets))
    )
    extra = session.scalar(
        select(AssetEvent.extra)
        .where(
            AssetEvent.asset_id.in_(assets),
            AssetEvent.source_dag_id == dag_id,
            AssetEvent.source_run_id == run_id,
            AssetEvent.source_task_id == task_id,
            AssetEvent.source_map_index == map_index,
        )
        .order_by(AssetEvent.timestamp.desc())
        .limit(1)
    )
    return str(extra["location"]) if extra and extra.get("location") else ""


def _record_location(value: Any) -> str:
    from alamode_airflow.records import SuccessRecord
    from alamode_airflow.store import OutputStore

    text = value if isinstance(value, str) else json.dumps(value)
    store = OutputStore.configured()
    return store.shown(store.data_of(SuccessRecord.loads(text)))


#: Airflow leaves a URI scheme starting with "x-" to its owner: no provider's
#: normaliser is looked up for it, and that lookup loads every provider's asset handlers
#: (about 0.35 s), once in every process that parses a DAG file.
ASSET_SCHEME = "x-alamode"


def output_asset(output_id: str) -> Asset:
    """The Asset a task updates when it commits ``output_id`` (its ID in the file; a
    partitioned output's own ID travels in the event's extra)."""
    return Asset(
        uri=f"{ASSET_SCHEME}://outputs/{output_id}",
        name=f"alamode/{output_id[:12]}",
        group=ASSET_GROUP,
    )
