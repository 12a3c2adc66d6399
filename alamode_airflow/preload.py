"""Imported by every Airflow process as it starts (an ``airflow.policy`` entry point,
which Airflow loads while it initializes): the modules that build a DAG from an
encoded file are then imported once per Airflow process, before the DAG processor
forks a parser per file and before a worker forks each task's process, instead of
once in every one of those.

It defines no policy. Nothing here may stop Airflow: should the import fail, the
failure is left to each parser, which imports the engine itself and reports the
error against its file, as without this module.
"""

from __future__ import annotations

import contextlib

with contextlib.suppress(Exception):
    import alamode_airflow.loader  # noqa: F401
