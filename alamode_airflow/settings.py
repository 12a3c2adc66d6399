"""The engine's settings, from Airflow's config section ``[alamode]`` (so also from
``AIRFLOW__ALAMODE__<KEY>`` environment variables)."""

from __future__ import annotations

import os

SECTION = "alamode"


def airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")


def storage_root() -> str:
    """Where outputs live: ``[alamode] storage_root``, default ``$AIRFLOW_HOME/alamode``.

    Any URL ObjectStoragePath understands works (``file://``, ``s3://``, ``gs://``)."""
    from alamode_airflow._compat import conf

    default = os.path.join(airflow_home(), "alamode")
    return conf.get(SECTION, "storage_root", fallback=default) or default


def get(key: str) -> str | None:
    """Any other ``[alamode]`` setting (``runner``, ``docker_url``,
    ``kubernetes_namespace``, ``kubernetes_store_claim``, ``storage_conn_id``,
    ``claim_lease_seconds``, ``protect_inputs``: ``mount`` or ``check``,
    ``task_process_dag``: ``task`` or ``whole``,
    ``record_cache``, ``parse_cache``, ``openlineage_namespace``), or None."""
    from alamode_airflow._compat import conf

    return conf.get(SECTION, key, fallback=None) or None
