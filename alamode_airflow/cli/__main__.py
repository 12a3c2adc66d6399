"""``python -m alamode_airflow.cli``: the alamode command."""

from alamode_airflow.cli import run

run()
