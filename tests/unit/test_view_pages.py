"""The provenance pages' content, from a real local store filled as the engine fills it:
what each task's row says (the same as ``alamode explain``), which record a task
instance's page names, and that nothing from the store reaches a page unescaped."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from a_la_mode import load
from alamode_airflow.history import explain
from alamode_airflow.manifests import manifest
from alamode_airflow.store import OutputStore
from alamode_airflow.view import forms, pages
from alamode_airflow.view.facts import Attempt, dag_rows, instance_facts
from tests.unit.storefill import produce

LINKS = pages.Links("/alamode")
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def store(tmp_path) -> OutputStore:
    return OutputStore(str(tmp_path / "store"))


def test_rows_say_what_explain_says(collage, store):
    produce(store, load(collage.bencode()), "2026-01-01")
    collage.blur.spec["sha"] = "new"
    pipeline = load(collage.bencode())
    rows = {row.status.task: row for row in dag_rows(pipeline, store, "collage")}
    for name, row in rows.items():
        expected = explain(pipeline, name, store, "collage")
        assert row.explanation.verdict is expected.verdict, name
        assert row.explanation.reasons() == expected.reasons(), name
    assert rows["blur"].explanation.reasons() == ["spec sha: '6f09d' -> 'new'"]
    assert rows["download_images"].status.state == "done"
    page = pages.dag_page(LINKS, "collage", list(rows.values()))
    assert "spec sha: '6f09d' -&gt; 'new'" in page
    assert "upstream blur has a new output ID" in page
    assert 'href="/alamode/dags/collage/rebuild?task=blur"' in page
    assert "2 of 4 outputs done" in page


def test_a_never_built_task_says_so(collage, store):
    rows = dag_rows(load(collage.bencode()), store, "collage")
    assert {row.status.state for row in rows} == {"missing"}
    assert all("runs: never built" in pages.reasons_html(row.explanation) for row in rows)


def test_nothing_from_the_store_is_rendered_as_markup(collage, store):
    collage.blur.spec["command"] = f"echo '{EVIL}'"
    pipeline = load(collage.bencode())
    produce(store, pipeline, EVIL)
    page = pages.dag_page(LINKS, "collage", dag_rows(pipeline, store, "collage"))
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    attempt = Attempt("success", 1, None, False, None)
    found = instance_facts(pipeline, store, "blur", EVIL, "collage", attempt)
    instance = pages.instance_page(LINKS, "collage", EVIL, attempt, found)
    assert found.record is not None
    assert "<img" not in instance
    assert "&lt;img src=x onerror=alert(1)&gt;" in instance


def rebuild(store: OutputStore, output_id: str, end: str) -> None:
    """Commit generation 1 of ``output_id`` as a rebuild run does."""
    old = store.lookup(output_id).record
    staging = store.stage(output_id)
    (staging / "data" / "out.txt").write_text("rebuilt")
    record = dataclasses.replace(
        old,
        generation=1,
        run_id="rebuild_run",
        end=end,
        rebuilt=True,
        data_path=store.data_path(staging),
        manifest=manifest(staging / "data"),
    )
    store.commit(staging, record)


def test_a_skipped_instance_names_the_record_it_found_then(collage, store):
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01", end="2026-01-01T00:00:01+00:00")
    rebuild(store, pipeline["blur"].output, "2026-01-03T00:00:00+00:00")

    def skipped_at(day: int):
        end = datetime(2026, 1, day, tzinfo=UTC)
        attempt = Attempt("skipped", 0, end, False, None)
        return attempt, instance_facts(pipeline, store, "blur", "run", "collage", attempt)

    attempt, before = skipped_at(2)
    assert (before.record.run_id, before.record.generation) == ("2026-01-01", 0)
    page = pages.instance_page(LINKS, "collage", "run", attempt, before)
    assert "Skipped: its output was already recorded" in page
    assert "The output has a newer generation now" in page
    assert "rebuild_run" in page
    assert before.location.endswith("/0/data")
    _, after = skipped_at(4)
    assert (after.record.run_id, after.record.generation) == ("rebuild_run", 1)


def test_a_cleared_skip_says_what_clear_means_and_offers_the_rebuild(collage, store):
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01")
    end = datetime(2026, 2, 1, tzinfo=UTC)
    for cleared in (False, True):
        attempt = Attempt("skipped", 2 if cleared else 0, end, cleared, None)
        found = instance_facts(pipeline, store, "blur", "run", "collage", attempt)
        page = pages.instance_page(LINKS, "collage", "run", attempt, found)
        assert (pages.CLEAR_RULE in page) is cleared
        assert 'href="/alamode/dags/collage/rebuild?task=blur"' in page
    viewer = pages.instance_page(LINKS, "collage", "run", attempt, found, may_rebuild=False)
    assert pages.CLEAR_RULE in viewer
    assert "/rebuild" not in viewer
    assert "Rebuilding takes the right to trigger this DAG" in viewer


def test_a_partitioned_instance_reads_its_interval_output(store):
    from a_la_mode import Dag
    from a_la_mode.partitions import partition_id

    dag = Dag({"dag_id": "collage", "schedule": "@daily"})
    dag.task("raw", {"command": "echo raw", "partition": "interval"})
    pipeline = load(dag.bencode())
    stamps = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    produce(store, pipeline, "daily", interval=stamps)
    interval = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    attempt = Attempt("success", 1, None, False, interval)
    found = instance_facts(pipeline, store, "raw", "daily", "collage", attempt)
    assert found.output_id == partition_id(pipeline["raw"].output, *stamps)
    assert found.record is not None
    assert found.record.interval == stamps
    (row,) = dag_rows(pipeline, store, "collage")
    assert row.status.state == "per interval"
    assert "1 interval done" in pages.dag_page(LINKS, "collage", [row])


S3_CONN = "alamode_view_s3"


def test_the_pages_read_an_object_store(collage, server, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{S3_CONN.upper()}", server.connection())
    store = OutputStore("s3://alamode-outputs/view", conn_id=S3_CONN)
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01", names={"download_images", "blur"})
    rows = {row.status.task: row for row in dag_rows(pipeline, store, "collage")}
    assert rows["blur"].status.state == "done"
    assert rows["collage"].explanation.verdict.value == "never built"
    attempt = Attempt("skipped", 0, datetime(2026, 2, 1, tzinfo=UTC), False, None)
    found = instance_facts(pipeline, store, "blur", "run", "collage", attempt)
    assert found.record.run_id == "2026-01-01"
    assert found.location.startswith("s3://")
    assert f"alamode-outputs/view/objects/{found.output_id}/0/" in found.location
    assert found.location in pages.instance_page(LINKS, "collage", "run", attempt, found)
    collage.blur.spec["sha"] = "new"  # its newest records are found from the listing
    changed = {row.status.task: row for row in dag_rows(load(collage.bencode()), store, "collage")}
    assert changed["blur"].explanation.reasons() == ["spec sha: '6f09d' -> 'new'"]
    assert changed["blur"].explanation.nearest.run_id == "2026-01-01"


def test_pages_load_nothing_and_their_links_stay_in_the_frame(collage, store):
    """Airflow's sandboxed iframe blocks ``target="_top"``; the pages' policy allows no
    script and nothing loaded from elsewhere, so every page must do without."""
    from alamode_airflow.view.html import HEADERS

    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01")
    attempt = Attempt("skipped", 2, None, True, None)
    found = instance_facts(pipeline, store, "blur", "run", "collage", attempt)
    shown = [
        pages.dag_page(LINKS, "collage", dag_rows(pipeline, store, "collage"), run=("run", {})),
        pages.instance_page(LINKS, "collage", "run", attempt, found),
        forms.triggered_page(LINKS, "collage", "run", ["blur"], paused=True),
        forms.confirm_page(LINKS, "collage", ["blur"], 2, "token"),
    ]
    for page in shown:
        assert "target=" not in page
        assert "<script" not in page
        assert "src=" not in page
    assert "frame-ancestors 'self'" in HEADERS["Content-Security-Policy"]
    assert HEADERS["X-Frame-Options"] == "SAMEORIGIN"


def test_a_rebuild_of_a_partitioned_task_names_the_interval_it_rebuilds():
    """A manual run at 10:00 of a daily DAG gets yesterday's interval, as Airflow's own
    trigger endpoint infers it: the confirmation says so."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    from alamode_airflow.view.trigger import rebuild_interval

    daily = CronDataIntervalTimetable("@daily", UTC)
    interval = rebuild_interval(daily, datetime(2026, 1, 5, 10, tzinfo=UTC))
    assert interval == (datetime(2026, 1, 4, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC))
    per_interval = forms.PerInterval(["raw"], interval)
    page = forms.confirm_page(LINKS, "collage", ["raw"], 2, "token", per_interval)
    assert "the interval <strong>2026-01-04T00:00:00+00:00 to 2026-01-05T00:00:00+00:00" in page
    assert "raw is partitioned" in page


def test_an_automatic_retry_is_not_called_a_clear(collage, store):
    """Airflow keeps each earlier try in its history: one that ended up for retry was
    retried, one that ended otherwise was cleared; with no history, say "re-run"."""
    from alamode_airflow.view.facts import was_cleared

    assert was_cleared(["success"], 2) is True
    assert was_cleared(["up_for_retry", "skipped"], 3) is True
    assert was_cleared(["up_for_retry"], 2) is False
    assert was_cleared([], 1) is False
    assert was_cleared([], 2) is None
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01")
    shown = {}
    for cleared in (True, False, None):
        attempt = Attempt("skipped", 2, None, cleared, None)
        found = instance_facts(pipeline, store, "blur", "run", "collage", attempt)
        shown[cleared] = pages.instance_page(LINKS, "collage", "run", attempt, found)
    assert "This instance was cleared" in shown[True]
    assert pages.CLEAR_RULE not in shown[False]
    assert "was re-run (cleared or retried)" in shown[None]
