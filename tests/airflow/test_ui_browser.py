"""Airflow's UI in a real browser, logged in through Airflow's own auth: what a person
sees of our DAGs (loopback/browser.py drives the system's Chromium)."""

from __future__ import annotations

import dataclasses
import html
import json
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
