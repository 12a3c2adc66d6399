"""From meta to DAG arguments: what a user can set, and clear errors for the rest."""

from __future__ import annotations

import datetime

import pendulum
import pytest

from a_la_mode import SpecValueError
from alamode_airflow.meta import dag_settings


def test_defaults():
    settings = dag_settings({}, "my_file")
    assert settings.dag_id == "my_file"
    assert settings.kwargs["schedule"] is None
    assert settings.kwargs["catchup"] is False
    assert settings.kwargs["tags"] == ["alamode"]
    assert settings.kwargs["start_date"] == pendulum.datetime(2024, 1, 1, tz="UTC")
    assert settings.unknown == ()


def test_every_known_key():
    meta = {
        "dag_id": "collage",
        "schedule": "0 6 * * *",
        "start_date": "2026-02-03",
        "catchup": 1,
        "tags": ("images",),
        "description": "make a collage",
        "max_active_runs": 2,
        "retries": 3,
        "owner": "ana",
        "cwd": "../code",
        "alamode_digest": "x",
        "colour": "blue",
    }
    settings = dag_settings(meta, "ignored")
    kwargs = settings.kwargs
    assert settings.dag_id == "collage"
    assert kwargs["schedule"] == "0 6 * * *"
    assert kwargs["start_date"] == pendulum.datetime(2026, 2, 3, tz="UTC")
    assert kwargs["catchup"] is True
    assert kwargs["tags"] == ["alamode", "images"]
    assert kwargs["description"] == "make a collage"
    assert kwargs["max_active_runs"] == 2
    # retries and owner are file-wide task settings, read by ``operating``.
    assert "default_args" not in kwargs
    assert settings.unknown == ("colour",)


def test_run_settings_become_dag_arguments():
    kwargs = dag_settings(
        {"max_active_tasks": 4, "dagrun_timeout": 3600, "doc_md": "Owned by *images*."}, "f"
    ).kwargs
    assert kwargs["max_active_tasks"] == 4
    assert kwargs["dagrun_timeout"] == datetime.timedelta(hours=1)
    assert kwargs["doc_md"] == "Owned by *images*."


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"schedule": 5}, "key 'meta.schedule': must be a str, not int"),
        ({"start_date": "soon"}, "key 'meta.start_date': not a date"),
        ({"max_active_tasks": 0}, "key 'meta.max_active_tasks': must be at least 1, not 0"),
        ({"dagrun_timeout": "1h"}, "key 'meta.dagrun_timeout': must be an integer, not '1h'"),
        ({"doc_md": ""}, "key 'meta.doc_md': must be a non-empty string"),
        ({"dag_id": "has space"}, "key 'meta.dag_id': 'has space' is not a valid Airflow dag_id"),
    ],
)
def test_bad_values_name_the_key(meta, message):
    with pytest.raises(SpecValueError, match=message):
        dag_settings(meta, "f")


def test_partitioned_pipeline_gets_a_data_interval_timetable():
    from airflow.sdk import CronDataIntervalTimetable

    timetable = dag_settings({"schedule": "@daily"}, "f", partitioned=True).kwargs["schedule"]
    assert isinstance(timetable, CronDataIntervalTimetable)
    assert timetable.expression == "0 0 * * *"
    # Unpartitioned pipelines keep Airflow's own reading of the cron string.
    assert dag_settings({"schedule": "@daily"}, "f").kwargs["schedule"] == "@daily"


@pytest.mark.parametrize("meta", [{}, {"schedule": "@once"}, {"schedule": "@continuous"}])
def test_partitioned_pipeline_needs_a_periodic_schedule(meta):
    with pytest.raises(SpecValueError, match=r"key 'meta\.schedule': a pipeline with partitioned"):
        dag_settings(meta, "f", partitioned=True)
    assert dag_settings(meta, "f").kwargs["schedule"] == meta.get("schedule")
