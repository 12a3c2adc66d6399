"""Registers alamode-airflow with Airflow (entry point group ``airflow.plugins``): the
Output location link, the storage root macro, and the provenance pages (``view``),
an app the api-server mounts at ``/alamode`` and the tabs that show it."""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from alamode_airflow import settings
from alamode_airflow.links import OutputLocationLink, ProvenanceLink
from alamode_airflow.view import EXTERNAL_VIEWS, FASTAPI_APPS


class AlamodePlugin(AirflowPlugin):
    name = "alamode"
    macros: ClassVar[list] = [settings.storage_root]
    operator_extra_links: ClassVar[list] = [OutputLocationLink(), ProvenanceLink()]
    fastapi_apps: ClassVar[list] = FASTAPI_APPS
    external_views: ClassVar[list] = EXTERNAL_VIEWS
