"""Registers alamode-airflow with Airflow (entry point group ``airflow.plugins``)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from alamode_airflow import settings


class AlamodePlugin(AirflowPlugin):
    name = "alamode"
    macros = [settings.storage_root]
