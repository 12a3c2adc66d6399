"""The links Airflow's UI offers on our task instances, read from a real api-server's
REST API as the UI reads them."""

from __future__ import annotations

from urllib.parse import quote

from a_la_mode import Dag
from loopback.apiserver import api_server
from loopback.rest import Api
from tests.airflow.conftest import started, writer


def chain(counter) -> Dag:
    dag = Dag({"dag_id": "chain"})
    dag.task("a", writer(counter, "a")) >> dag.task("b", writer(counter, "b", reads="a"))
    return dag


def provenance(dag_id: str, run_id: str, task_id: str) -> str:
    return f"/alamode/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}"


def test_a_skipped_task_links_to_its_provenance_page(tmp_path, migrated_db, counter):
    home, port = started(tmp_path, migrated_db)
    chain(counter).save(home.dags / "chain.alamode")
    first = home.test_run("chain", "2026-01-01")
    cached = home.test_run("chain", "2026-01-02")
    assert cached.states == {"alamode_plan": "success", "a": "skipped", "b": "skipped"}
    with api_server(home, port) as url:
        api = Api(url)

        def links(run_id: str, task_id: str) -> dict:
            path = f"/dags/chain/dagRuns/{run_id}/taskInstances/{task_id}/links"
            return api.call("GET", path)["extra_links"]

        # "Why skipped" is one click away: the page names the run that produced b.
        assert links(cached.run_id, "b") == {
            "Output location": None,
            "Provenance": provenance("chain", cached.run_id, "b"),
        }
        produced = links(first.run_id, "b")
        assert produced["Provenance"] == provenance("chain", first.run_id, "b")
        assert produced["Output location"].endswith("/data")
        # The plan task is not one of our output operators: it has no such links.
        assert links(cached.run_id, "alamode_plan") == {}
    # The api-server derives the links: no task pushed one.
    assert home.query("select key from xcom where key like '_link_%'") == []
