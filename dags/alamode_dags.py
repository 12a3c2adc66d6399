"""Airflow DAG file: builds one DAG from every *.alamode file under this folder.

Copy this file into your Airflow dags folder, next to your encoded pipelines.
"""

from pathlib import Path

from alamode_airflow.loader import load_dags

globals().update(load_dags(Path(__file__).parent))
