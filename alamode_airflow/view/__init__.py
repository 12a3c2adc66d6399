"""Provenance in Airflow's UI: pages served by the api-server under ``/alamode``, shown
as tabs of Airflow's DAG, DAG run and task instance pages (``EXTERNAL_VIEWS``).

The plugin is loaded by every Airflow process (the DAG processor's parsers, each task),
so importing this package costs nothing: the FastAPI app, the store and the renderers
are imported by ``app.create_app`` when the api-server serves the first page
(``LazyApp``), never by processes that serve none.

URLs (under Airflow's base path):

- ``GET /alamode/dags/{dag_id}[?run_id=]``: every task's output and what the next run
  does with it (``alamode status`` and ``explain``), and each task's state in a run;
- ``GET /alamode/dags/{dag_id}/runs/{run_id}/tasks/{task_id}[?map_index=]``: the record
  that made a task instance skip, or what it committed and read;
- ``GET /alamode/outputs/{output_id}[?verify=1][&generation=]``: its lineage, drawn;
- ``GET``, then ``POST /alamode/dags/{dag_id}/rebuild?task=...``: confirm, then trigger
  a run with conf ``{"rebuild": [tasks]}``.
"""

from __future__ import annotations

from typing import Any

URL_PREFIX = "/alamode"

#: Tabs of Airflow's pages (the UI embeds each in an iframe and fills in the
#: placeholders; it leaves ``{MAP_INDEX}`` as is for a task that is not mapped).
EXTERNAL_VIEWS = [
    {
        "name": "Provenance",
        "href": URL_PREFIX + "/dags/{DAG_ID}",
        "destination": "dag",
        "url_route": "alamode-provenance",
    },
    {
        "name": "Provenance",
        "href": URL_PREFIX + "/dags/{DAG_ID}?run_id={RUN_ID}",
        "destination": "dag_run",
        "url_route": "alamode-run-provenance",
    },
    {
        "name": "Provenance",
        "href": URL_PREFIX + "/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}?map_index={MAP_INDEX}",
        "destination": "task_instance",
        "url_route": "alamode-task-provenance",
    },
]


class LazyApp:
    """An ASGI app that imports and builds the real one (``app.create_app``) on its
    first request: the api-server mounts it, other processes only hold it."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from alamode_airflow.view.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


FASTAPI_APPS = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "alamode provenance"}]
