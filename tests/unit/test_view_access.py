"""Who sees what on the provenance pages: an output's page is found and authorized
before its lineage is walked or verified, and a page shows another DAG's records only to
a user who may read that DAG. ``may_read`` stands for Airflow's auth manager, which the
api-server tests (tests/airflow/test_view.py) exercise for real."""

from __future__ import annotations

import pytest

from a_la_mode import load
from alamode_airflow.store import OutputStore
from alamode_airflow.view import facts, pages
from alamode_airflow.view.facts import Attempt, dag_rows, instance_facts
from tests.unit.storefill import produce

LINKS = pages.Links("/alamode")


class CountingStore(OutputStore):
    """A local store that counts the downloads a verification makes."""

    fetched = 0

    def fetch(self, record, into):
        self.fetched += 1
        return super().fetch(record, into)


@pytest.fixture
def store(tmp_path) -> CountingStore:
    return CountingStore(str(tmp_path / "store"))


def test_an_output_is_authorized_before_its_lineage_is_verified(collage, store):
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01")
    top = pipeline["collage"].output
    asked: list[str] = []

    def nobody(dag_id: str) -> bool:
        asked.append(dag_id)
        return False

    with pytest.raises(facts.Hidden) as refused:
        facts.output_lineage(store, top, None, True, nobody)
    assert (store.fetched, asked) == (0, ["collage"])
    absent = "0" * len(top)
    with pytest.raises(facts.Hidden) as missing:
        facts.output_lineage(store, absent, None, True, lambda _: True)
    assert str(refused.value).replace(top, "X") == str(missing.value).replace(absent, "X")
    found = facts.output_lineage(store, top, None, True, lambda _: True)
    assert (store.fetched, found.verified, len(found.nodes)) == (4, True, 4)
    assert {node.check.value for node in found.nodes} == {"ok"}


def test_verify_is_refused_above_the_limit(collage, store, monkeypatch):
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01")
    monkeypatch.setattr(facts, "VERIFY_LIMIT", 3)
    found = facts.output_lineage(store, pipeline["collage"].output, None, True, lambda _: True)
    assert (store.fetched, found.verified, len(found.nodes)) == (0, False, 4)
    assert "alamode lineage --verify" in found.refused


def test_a_shared_output_shows_only_that_it_is_another_dags(collage, store):
    """DAG ``reuser`` has the same tasks as ``collage``, whose run produced them: a user
    who may read only ``reuser`` sees that the outputs are done, not that run."""
    pipeline = load(collage.bencode())
    produce(store, pipeline, "secret-run")
    rows = dag_rows(pipeline, store, "reuser")
    assert facts.row_dags(rows) == {"collage"}
    page = pages.dag_page(LINKS, "reuser", rows, readable=set())
    assert "4 of 4 outputs done" in page
    assert "secret-run" not in page
    assert page.count(pages.ANOTHER_DAG) == 4
    assert "secret-run" in pages.dag_page(LINKS, "reuser", rows, readable={"collage"})
    attempt = Attempt("skipped", 1, None, False, None)
    found = instance_facts(pipeline, store, "blur", "run", "reuser", attempt)
    assert facts.instance_dags(found) == {"collage"}
    instance = pages.instance_page(LINKS, "reuser", "run", attempt, found, readable=set())
    for detail in ("secret-run", "python t.py blur", found.location, "Read"):
        assert detail not in instance, detail
    assert pages.ANOTHER_DAG in instance
    shown = pages.instance_page(LINKS, "reuser", "run", attempt, found, readable={"collage"})
    assert "secret-run" in shown
    assert "python t.py blur" in shown


def test_an_old_runs_instance_shows_the_output_that_run_used(collage, store):
    old = load(collage.bencode())
    produce(store, old, "before-the-change")
    collage.blur.spec["sha"] = "new"
    now = load(collage.bencode())
    attempt = Attempt("success", 1, None, False, None)
    ran = old["blur"].output
    found = instance_facts(now, store, "blur", "before-the-change", "collage", attempt, ran)
    assert (found.output_id, found.file_now) == (ran, now["blur"].output)
    assert found.record is not None
    page = pages.instance_page(LINKS, "collage", "before-the-change", attempt, found)
    assert "the DAG's file has changed since" in page
    assert "none for this instance" not in page


def test_a_page_view_does_bounded_work(collage, store, monkeypatch):
    """A task changed many times: the page compares with its newest records only. A
    partitioned task done for many intervals: the page lists the newest ones only."""
    from a_la_mode import Dag
    from alamode_airflow.view import nearest

    for n in range(nearest.LIMIT + 5):
        collage.blur.spec["sha"] = f"v{n}"
        end = f"2026-01-{n + 1:02d}T00:00:01+00:00"
        produce(store, load(collage.bencode()), f"run{n}", {"download_images", "blur"}, end)
    collage.blur.spec["sha"] = "now"
    reads = []
    read_record = store.backend.read_record
    monkeypatch.setattr(store.backend, "read_record", lambda *a: reads.append(a) or read_record(*a))
    (blur,) = [
        r for r in dag_rows(load(collage.bencode()), store, "collage") if r.status.task == "blur"
    ]
    assert blur.explanation.nearest.run_id == f"run{nearest.LIMIT + 4}"
    assert len(reads) == nearest.LIMIT + 1  # download_images's record, and 20 of blur's
    page = pages.dag_page(LINKS, "collage", [blur])
    assert f"compared with its newest {nearest.LIMIT} records of {nearest.LIMIT + 5}" in page

    daily = Dag({"dag_id": "collage", "schedule": "@daily"})
    daily.task("raw", {"command": "echo raw", "partition": "interval"})
    pipeline = load(daily.bencode())
    for day in range(1, 61):
        start, end = (
            f"2026-{1 + (d - 1) // 28:02d}-{1 + (d - 1) % 28:02d}T00:00:00Z" for d in (day, day + 1)
        )
        produce(store, pipeline, f"day{day}", interval=(start, end))
    (row,) = dag_rows(pipeline, store, "collage")
    page = pages.dag_page(LINKS, "collage", [row])
    assert "60 intervals done, the newest 50 listed" in page
    assert page.count("<li>2026-") == pages.INTERVALS_SHOWN
    assert "(day60)" in page
    assert "(day10)" not in page
