"""Who sees what on the provenance pages: an output's page is found and authorized
before its lineage is walked or verified, and a page shows another DAG's records only to
a user who may read that DAG. ``may_read`` stands for Airflow's auth manager, which the
api-server tests (tests/airflow/test_view.py) exercise for real."""

from __future__ import annotations

import pytest

from a_la_mode import load
from alamode_airflow.store import OutputStore
from alamode_airflow.view import facts
from tests.unit.storefill import produce


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
