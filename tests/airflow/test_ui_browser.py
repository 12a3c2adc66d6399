"""Airflow's UI in a real browser, logged in through Airflow's own auth: what a person
sees of our DAGs (loopback/browser.py drives the system's Chromium)."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from urllib.parse import quote

from a_la_mode import Dag
from loopback.apiserver import api_server
from loopback.browser import SKIPPED, count_squares, login, ui_session
from tests.airflow.conftest import started, writer

USER, PASSWORD = "alice", "alice-s-secret"


def chain(counter) -> Dag:
    dag = Dag({"dag_id": "chain"})
    dag.task("a", writer(counter, "a")) >> dag.task("b", writer(counter, "b", reads="a"))
    return dag


def with_login(tmp_path, migrated_db):
    """An Airflow home whose UI asks for a login: one admin, ``USER``, whose password
    the simple auth manager reads from its passwords file."""
    home, port = started(tmp_path, migrated_db)
    users = (
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False"),
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{USER}:admin"),
    )
    home = dataclasses.replace(home, extra_env=home.extra_env + users)
    passwords = home.home / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    return home, port


def test_a_logged_in_user_sees_the_grid_and_a_skipped_tasks_provenance_link(
    tmp_path, migrated_db, counter
):
    home, port = with_login(tmp_path, migrated_db)
    chain(counter).save(home.dags / "chain.alamode")
    home.test_run("chain", "2026-01-01")
    cached = home.test_run("chain", "2026-01-02").run_id
    with api_server(home, port) as url, ui_session(url, login(url, USER, PASSWORD)) as browser:
        grid = browser.open("/dags/chain", until_text="alamode_plan", png=tmp_path / "grid.png")
        assert grid.url == f"{url}/dags/chain"
        assert {"chain", "alamode_plan", "a", "b"} <= set(grid.text.split())
        # The second run's a and b are skipped: two squares in the skipped colour.
        assert count_squares(grid.png, SKIPPED) == 2
        run = quote(cached, safe="")
        task = browser.open(
            f"/dags/chain/runs/{run}/tasks/b/details",
            until_text="Provenance",
            png=tmp_path / "b.png",
        )
        link = f"/alamode/dags/chain/runs/{run}/tasks/b"
        assert f'href="{html.escape(link)}"' in task.html
    print(f"screenshots: {grid.png} {task.png}")


def test_without_a_login_the_ui_shows_the_login_form(tmp_path, migrated_db):
    home, port = with_login(tmp_path, migrated_db)
    with api_server(home, port) as url, ui_session(url) as browser:
        page = browser.open("/dags", until_text="Sign in")
    assert page.url.startswith(f"{url}/auth/login")
    assert "Dags" not in page.text.split()


def collage(counter) -> Dag:
    """The README's pipeline: a diamond, so download_images is an ancestor twice."""
    dag = Dag({"dag_id": "collage"})
    download = dag.task("download_images", writer(counter, "images"))
    blur = dag.task("blur", writer(counter, "blur", reads="download_images"))
    edges = dag.task("edge_enhance", writer(counter, "edges", reads="download_images"))
    together = dag.task("collage", writer(counter, "collage", reads="blur"))
    download >> [blur, edges] >> together
    return dag


def test_a_skipped_tasks_provenance_names_the_producing_run_and_draws_its_lineage(
    tmp_path, migrated_db, counter
):
    home, port = with_login(tmp_path, migrated_db)
    dag = collage(counter)
    dag.save(home.dags / "collage.alamode")
    produced = home.test_run("collage", "2026-01-01").run_id
    cached = home.test_run("collage", "2026-01-02")
    assert cached.states["collage"] == "skipped"
    run = quote(cached.run_id, safe="")
    with api_server(home, port) as url, ui_session(url, login(url, USER, PASSWORD)) as browser:
        # The task instance's Provenance tab: Airflow shows the page in an iframe.
        tab = browser.open(
            f"/dags/collage/runs/{run}/tasks/collage/plugin/alamode-task-provenance",
            until_text="produced by",
            clip=(0, 0, 1280, 505),
            png=tmp_path / "provenance-tab.png",
        )
        (inside,) = tab.frames
        assert "Skipped: its output was already recorded" in inside
        assert html.escape(produced) in inside.split("produced by", 1)[1]
        # The Details tab's Provenance button leads to the same page.
        details = f"/dags/collage/runs/{run}/tasks/collage/details"
        details = browser.open(details, until_text="Provenance")
        (href,) = re.findall(r'href="(/alamode/[^"]+)"', details.html)
        page = browser.open(html.unescape(href), until_text="produced by")
        assert html.escape(produced) in page.html.split("produced by", 1)[1]
        # The output's lineage: one node per ancestor, download_images once.
        output = dag.encode()["tasks"]["collage"]["output"]
        lineage = browser.open(
            f"/alamode/outputs/{output}",
            until_text="download_images",
            crop="svg.lineage",
            png=tmp_path / "lineage.png",
        )
    nodes = re.findall(r'<g class="node[^"]*" data-output-id="([0-9a-f]{64})"', lineage.html)
    ids = {name: task["output"] for name, task in dag.encode()["tasks"].items()}
    assert sorted(nodes) == sorted(ids.values())
    print(f"screenshots: {tab.png} {lineage.png}")
