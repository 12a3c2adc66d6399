"""The provenance pages on a real ``airflow api-server`` with real users (Airflow's
simple auth manager: an admin, and a viewer who may read but not trigger), after real
runs of an encoded file by ``airflow dags test``: the second run finds every output
recorded and skips it."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import requests

from a_la_mode import Dag, load
from alamode_airflow.dag_module import write_module
from loopback.airflow_cli import AirflowHome
from loopback.local import free_port, query, service_env, start, stop, wait_for_port
from loopback.wait import until
from tests.airflow.conftest import LOADER, writer

USERS = {"admin": "admin-secret", "viewer": "viewer-secret"}


def pipeline(counter) -> Dag:
    """fetch -> clean -> report, and other (unrelated)."""
    dag = Dag({"dag_id": "prov"})
    fetch = dag.task("fetch", writer(counter, "fetched"))
    clean = dag.task("clean", writer(counter, "clean", reads="fetch"))
    report = dag.task("report", writer(counter, "report", reads="clean"))
    dag.task("other", writer(counter, "other"))
    fetch >> clean >> report
    return dag


@pytest.fixture(scope="module")
def served(tmp_path_factory, migrated_db):
    """The home after two runs, its api-server, and what the tests look for."""
    tmp = tmp_path_factory.mktemp("view")
    port = free_port()
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps(USERS))
    env = (
        *service_env(port),
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False"),
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer"),
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords)),
    )
    home = AirflowHome(tmp / "home", tmp / "dags", extra_env=env)
    home.home.mkdir()
    home.dags.mkdir()
    shutil.copy(migrated_db, home.home / "airflow.db")
    shutil.copy(LOADER, home.dags / LOADER.name)
    dag = pipeline(tmp / "executed.txt")
    dag.save(home.dags / "prov.alamode")
    first = home.test_run("prov", "2026-01-01")
    second = home.test_run("prov", "2026-01-02")
    assert set(second.states.values()) == {"success", "skipped"}
    solo = Dag({"dag_id": "solo"})
    solo.task("only", {"command": "true"})
    write_module(solo.save(home.dags / "solo.alamode"), load(solo.bencode()))
    home.cli("dags", "reserialize")  # what the DAG processor would do with the new module
    server = start(home, "api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"])
    try:
        wait_for_port(port, [server])
        url = f"http://127.0.0.1:{port}"
        tokens = {
            user: requests.post(
                f"{url}/auth/token", json={"username": user, "password": pw}, timeout=60
            ).json()["access_token"]
            for user, pw in USERS.items()
        }
        yield {
            "url": url,
            "home": home,
            "tokens": tokens,
            "first": first.run_id,
            "second": second.run_id,
            "pipeline": load(home.dags / "prov.alamode"),
            "executed": tmp / "executed.txt",
        }
    finally:
        stop([server])


def get(served, path: str, user: str | None = "admin", **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {served['tokens'][user]}"} if user else {}
    return requests.get(served["url"] + path, headers=headers, timeout=120, **kwargs)


def post(served, path: str, data, user: str | None = "admin", **headers) -> requests.Response:
    if user:
        headers["Authorization"] = f"Bearer {served['tokens'][user]}"
    return requests.post(served["url"] + path, data=data, headers=headers, timeout=120)


def quoted(run_id: str) -> str:
    return requests.utils.quote(run_id, safe="")


def test_an_anonymous_request_gets_no_data(served):
    report = served["pipeline"]["report"].output
    paths = [
        "/alamode/dags/prov",
        f"/alamode/dags/prov/runs/{quoted(served['second'])}/tasks/fetch",
        f"/alamode/outputs/{report}",
        "/alamode/dags/prov/rebuild?task=fetch",
    ]
    for path in paths:
        response = get(served, path, user=None)
        assert response.status_code in (401, 403), path
        assert "fetch" not in response.text.replace("task=fetch", "")
        assert report[:12] not in response.text
        assert served["first"] not in response.text
    refused = post(served, "/alamode/dags/prov/rebuild", {"task": "fetch"}, user=None)
    assert refused.status_code in (401, 403)
    forged = get(served, "/alamode/dags/prov", user=None, cookies={"_token": "forged"})
    assert forged.status_code == 403
    assert "fetch" not in forged.text


def test_the_uis_cookie_is_enough(served):
    """Airflow's UI shows the pages in an iframe: the browser sends its ``_token``."""
    cookie = {"_token": served["tokens"]["viewer"]}
    response = get(served, "/alamode/dags/prov", user=None, cookies=cookie)
    assert response.status_code == 200
    assert "<h1>Provenance of prov</h1>" in response.text


def test_the_dag_page_shows_each_output_and_the_next_run(served):
    response = get(served, "/alamode/dags/prov", user="viewer")
    assert response.status_code == 200
    for sent in (response, get(served, "/alamode/dags/absent")):  # a page, a refusal
        assert "frame-ancestors 'self'" in sent.headers["Content-Security-Policy"]
        assert sent.headers["X-Frame-Options"] == "SAMEORIGIN"
    page = response.text
    assert "4 of 4 outputs done" in page
    assert page.count("skipped: up to date") == 4
    for task in served["pipeline"]:
        assert task.output[:12] in page
    assert served["first"] in page  # the run that produced them, not the one that skipped
    assert "/rebuild?task=" not in page  # a viewer may not trigger the DAG
    with_run = get(served, f"/alamode/dags/prov?run_id={quoted(served['second'])}").text
    assert f"/alamode/dags/prov/runs/{quoted(served['second'])}/tasks/report" in with_run
    assert "/alamode/dags/prov/rebuild?task=report" in with_run  # an admin may


def test_a_skipped_task_names_the_run_that_produced_its_output(served):
    path = f"/alamode/dags/prov/runs/{quoted(served['second'])}/tasks/clean"
    response = get(served, path + "?map_index={MAP_INDEX}", user="viewer")
    assert response.status_code == 200
    page = response.text
    assert "Skipped: its output was already recorded" in page
    assert served["first"] in page
    clean = served["pipeline"]["clean"]
    assert f"{served['home'].store}/objects/{clean.output}/0/data" in page
    assert served["pipeline"]["fetch"].output[:12] in page  # what it read
    assert "Clear re-runs an attempt" not in page  # never cleared


def test_a_cleared_task_skips_and_its_page_says_clear_never_recomputes(served):
    """Clear a task that computed its output: the scheduler runs it again, it finds its
    output recorded and skips, without running its command."""
    home, url, first = served["home"], served["url"], served["first"]
    admin = {"Authorization": f"Bearer {served['tokens']['admin']}"}
    ran = served["executed"].read_text().split()
    scheduler = start(home, "scheduler", ["scheduler"])
    try:
        dag = f"{url}/api/v2/dags/prov"
        requests.patch(dag, json={"is_paused": False}, headers=admin).raise_for_status()
        clear = {"dry_run": False, "task_ids": ["fetch"], "dag_run_id": first, "only_failed": False}
        cleared = requests.post(
            f"{url}/api/v2/dags/prov/clearTaskInstances", json=clear, headers=admin, timeout=60
        )
        cleared.raise_for_status()
        sql = "select state, try_number from task_instance where run_id = ? and task_id = 'fetch'"
        until(
            lambda: query(home, sql, first) == [("skipped", 2)],
            timeout=300,
            every=1,
            what="the cleared task did not run again",
        )
    finally:
        requests.patch(f"{url}/api/v2/dags/prov", json={"is_paused": True}, headers=admin)
        stop([scheduler])
    assert served["executed"].read_text().split() == ran  # its command did not run
    page = get(served, f"/alamode/dags/prov/runs/{quoted(first)}/tasks/fetch").text
    assert "try 2" in page
    assert "Clear re-runs an attempt; it never recomputes a recorded output" in page
    assert "To recompute, rebuild." in page
    assert 'href="/alamode/dags/prov/rebuild?task=fetch"' in page


def test_the_output_page_draws_a_node_per_ancestor(served):
    tasks = served["pipeline"]
    response = get(served, f"/alamode/outputs/{tasks['report'].output}?verify=1", user="viewer")
    assert response.status_code == 200
    svg = re.search(r"<svg.*</svg>", response.text, flags=re.S).group(0)
    drawn = re.findall(r'<g class="node[^"]*" data-output-id="(\w+)"', svg)
    assert sorted(drawn) == sorted(tasks[name].output for name in ("report", "clean", "fetch"))
    assert "verify: all 3 outputs match" in response.text


def test_a_rebuild_needs_the_right_to_trigger_and_creates_the_run(served):
    home = served["home"]
    runs = "select run_id, conf from dag_run where dag_id = 'prov' order by id"
    before = home.query(runs)
    assert get(served, "/alamode/dags/prov/rebuild?task=fetch", user="viewer").status_code == 403
    form = get(served, "/alamode/dags/prov/rebuild?task=fetch")
    assert form.status_code == 200
    assert "(3 tasks in all)" in form.text  # fetch, clean, report
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    data = {"task": "fetch", "csrf": token}
    assert post(served, "/alamode/dags/prov/rebuild", data, user="viewer").status_code == 403
    evil = post(served, "/alamode/dags/prov/rebuild", data, Origin="http://evil.example")
    assert evil.status_code == 403
    forged = {"task": "fetch", "csrf": token[:-1] + "0"}
    assert post(served, "/alamode/dags/prov/rebuild", forged).status_code == 403
    assert home.query(runs) == before
    done = post(served, "/alamode/dags/prov/rebuild", data, Origin=served["url"])
    assert done.status_code == 201
    (run_id, conf), *_ = home.query(runs)[len(before) :]
    assert json.loads(conf) == {"rebuild": ["fetch"]}
    assert run_id in done.text


def test_the_views_are_registered_on_airflows_pages(served):
    plugins = get(served, "/api/v2/plugins").json()["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "alamode"]
    assert ours["fastapi_apps"][0]["url_prefix"] == "/alamode"
    views = {v["destination"]: v["href"] for v in ours["external_views"]}
    assert views == {
        "dag": "/alamode/dags/{DAG_ID}",
        "dag_run": "/alamode/dags/{DAG_ID}?run_id={RUN_ID}",
        "task_instance": "/alamode/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}"
        "?map_index={MAP_INDEX}",
    }


def test_a_dag_built_by_its_own_module_and_a_file_changed_since_its_parse(served):
    page = get(served, "/alamode/dags/solo", user="viewer").text
    assert "0 of 1 outputs done" in page
    assert "runs: never built" in page
    assert "changed since Airflow last parsed" not in page
    changed = Dag({"dag_id": "solo"})
    changed.task("only", {"command": "false"})
    changed.save(served["home"].dags / "solo.alamode")  # not parsed again: no processor
    page = get(served, "/alamode/dags/solo", user="viewer").text
    assert "the encoded file changed since Airflow last parsed this DAG (1 tasks" in page
    assert load(changed.bencode())["only"].output[:12] in page  # the file is shown


def test_a_rebuild_is_refused_as_airflows_trigger_refuses_it(served):
    """A DAG that allows no manual runs gets no rebuild run: a page that says so, 400."""
    home = served["home"]
    runs = "select count(*) from dag_run where dag_id = 'solo'"
    before = home.query(runs)
    home.query("update dag set allowed_run_types = ? where dag_id = 'solo'", '["scheduled"]')
    try:
        form = get(served, "/alamode/dags/solo/rebuild?task=only")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        data = {"task": "only", "csrf": token}
        refused = post(served, "/alamode/dags/solo/rebuild", data, Origin=served["url"])
    finally:
        home.query("update dag set allowed_run_types = NULL where dag_id = 'solo'")
    assert refused.status_code == 400
    assert "does not allow manual runs" in refused.text
    assert home.query(runs) == before


def test_malformed_parameters_get_the_pages_own_400(served):
    report = served["pipeline"]["report"].output
    instance = f"/alamode/dags/prov/runs/{quoted(served['second'])}/tasks/clean"
    for path, name in (
        (f"/alamode/outputs/{report}?generation=abc", "generation"),
        (instance + "?map_index=--1", "map_index"),
        (instance + "?map_index=%C2%B2", "map_index"),
    ):
        response = get(served, path)
        assert response.status_code == 400, path
        assert response.headers["content-type"].startswith("text/html")
        assert name in response.text
    absent = get(served, f"/alamode/outputs/{'0' * len(report)}")
    assert absent.status_code == 404  # as for an output of a DAG the user may not read


def test_an_old_runs_instance_shows_the_output_that_run_used(served):
    """The file changes after the runs: an earlier run's page still shows the output
    its DAG version had (its task's outlet), and says the file gives another now."""
    path = served["home"].dags / "prov.alamode"
    original = path.read_bytes()
    changed = pipeline(served["executed"])
    changed.report.spec["sha"] = "changed"
    changed.save(path)
    try:
        url = f"/alamode/dags/prov/runs/{quoted(served['first'])}/tasks/report"
        page = get(served, url, user="viewer").text
    finally:
        path.write_bytes(original)
    assert served["pipeline"]["report"].output in page
    assert "<h2>Computed</h2>" in page
    assert "none for this instance" not in page
    assert "the DAG's file has changed since" in page
    assert load(changed.bencode())["report"].output[:12] in page
