"""Registers alamode-airflow with Airflow (entry point group ``airflow.plugins``)."""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from alamode_airflow import settings
from alamode_airflow.links import OutputLocationLink


class AlamodePlugin(AirflowPlugin):
    name = "alamode"
    macros: ClassVar[list] = [settings.storage_root]
    operator_extra_links: ClassVar[list] = OutputLocationLink.registered()
