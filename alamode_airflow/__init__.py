"""alamode-airflow: the Apache Airflow 3 engine for a-la-mode pipelines."""

from __future__ import annotations

__version__ = "0.1.0"
