"""Airflow's UI in a real browser, logged in through Airflow's own auth: what a person
sees of our DAGs (loopback/browser.py drives the system's Chromium). The screenshots
stay in each test's tmp path; the README's pictures are two of them."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

from a_la_mode import Dag
from loopback.apiserver import api_server
from loopback.browser import SKIPPED, count_squares, login, ui_session
from tests.airflow.conftest import started, writer

USER, PASSWORD = "alice", "alice-s-secret"


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


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def collage(counter) -> Dag:
    """The README's pipeline: a diamond, so download_images is an ancestor twice."""
    dag = Dag({"dag_id": "collage"})
    download = dag.task("download_images", writer(counter, "images"))
    blur = dag.task("blur", writer(counter, "blur", reads="download_images"))
    edges = dag.task("edge_enhance", writer(counter, "edges", reads="download_images"))
    together = dag.task("collage", writer(counter, "collage", reads="blur"))
    download >> [blur, edges] >> together
    return dag


def test_a_logged_in_user_sees_why_a_task_was_skipped(tmp_path, migrated_db, counter):
    home, port = with_login(tmp_path, migrated_db)
    dag = collage(counter)
    dag.save(home.dags / "collage.alamode")
    # Runs at the current time, as the demo's: the grid shows them lasting seconds.
    produced = home.test_run("collage", now()).run_id
    run = quote(home.test_run("collage", now()).run_id, safe="")
    names = re.escape(html.escape(produced))  # the producing run, as a page shows it
    with api_server(home, port) as url, ui_session(url, login(url, USER, PASSWORD)) as browser:
        grid = browser.open("/dags/collage", until_text="alamode_plan", png=tmp_path / "grid.png")
        assert grid.url == f"{url}/dags/collage"
        assert {"collage", "alamode_plan", "download_images", "blur"} <= set(grid.text.split())
        # The second run's four tasks are skipped: four squares in the skipped colour.
        assert count_squares(grid.png, SKIPPED) == 4
        # One click from the task's Details tab: its Provenance button.
        details = f"/dags/collage/runs/{run}/tasks/collage/details"
        details = browser.open(details, until_text="Extra Links", png=tmp_path / "details.png")
        link = f"/alamode/dags/collage/runs/{run}/tasks/collage"
        assert re.findall(r'href="(/alamode/[^"]+)"', details.html) == [link]
        page = browser.open(link, until_text="produced by")
        assert re.search(f"produced by.*{names}", page.html, re.S)
        # The task's Provenance tab: Airflow shows the same page in an iframe.
        tab = browser.open(
            f"/dags/collage/runs/{run}/tasks/collage/plugin/alamode-task-provenance",
            until_text="produced by",
            clip=(0, 0, 1280, 505),
            png=tmp_path / "provenance-tab.png",
        )
        (inside,) = tab.frames
        assert "Skipped: its output was already recorded" in inside
        assert re.search(f"produced by.*{names}", inside, re.S)
        # The DAG's Provenance tab: every task's output, all four done.
        dag_tab = browser.open(
            "/dags/collage/plugin/alamode-provenance",
            until_text="outputs done",
            clip=(0, 0, 1280, 560),
            png=tmp_path / "dag-provenance.png",
        )
        (listed,) = dag_tab.frames
        assert "4 of 4 outputs done" in listed
        assert all(f"<code>{task}</code>" in listed for task in dag.encode()["tasks"])
        # The output's lineage: one node per ancestor, download_images once.
        outputs = {name: task["output"] for name, task in dag.encode()["tasks"].items()}
        lineage = browser.open(
            f"/alamode/outputs/{outputs['collage']}",
            until_text="download_images",
            crop="svg.lineage",
            png=tmp_path / "lineage.png",
        )
    nodes = re.findall(r'<g class="node[^"]*" data-output-id="([0-9a-f]{64})"', lineage.html)
    assert sorted(nodes) == sorted(outputs.values())
    print(f"screenshots: {grid.png} {details.png} {tab.png} {dag_tab.png} {lineage.png}")


def test_without_a_login_the_ui_shows_the_login_form(tmp_path, migrated_db):
    home, port = with_login(tmp_path, migrated_db)
    with api_server(home, port) as url, ui_session(url) as browser:
        page = browser.open("/dags", until_text="Sign in")
    assert page.url.startswith(f"{url}/auth/login")
    assert "Dags" not in page.text.split()
