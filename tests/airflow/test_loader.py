"""Loading encoded files from a dags folder through the real Airflow CLI."""

from __future__ import annotations

import json
import shutil

from a_la_mode import Dag, load
from alamode_airflow.dag_module import write_module
from tests.airflow.conftest import REPO, Airflow


def test_repo_dags_folder_loads_without_import_errors(airflow):
    for path in (REPO / "dags").glob("*.*"):
        shutil.copy(path, airflow.dags / path.name)
    dags = {d["dag_id"]: d for d in airflow.dag_list()}
    assert set(dags) == {"collage"}
    # Built by its own generated DAG file; the folder loader leaves it alone.
    assert dags["collage"]["fileloc"].endswith("collage.py")
    assert airflow.json("dags", "list-import-errors") == []


def test_bad_file_beside_a_good_one(airflow):
    good = Dag({"dag_id": "good", "schedule": "@daily", "tags": ["demo"], "color": "blue"})
    good.task("hello", {"command": "echo hello > $ALAMODE_OUTPUT/x"})
    airflow.save(good, "good")
    broken = good.bencode()
    (airflow.dags / "nested").mkdir()
    (airflow.dags / "nested" / "bad.alamode").write_bytes(broken[: len(broken) // 2])

    dags = {d["dag_id"]: d for d in airflow.dag_list()}
    assert set(dags) == {"good", "alamode_broken__bad"}
    (good_details,) = airflow.json("dags", "details", "good")
    assert {t["name"] for t in good_details["tags"]} == {"alamode", "demo"}
    assert good_details["timetable_summary"] == "0 0 * * *"
    (details,) = airflow.json("dags", "details", "alamode_broken__bad")
    assert {t["name"] for t in details["tags"]} == {"alamode-broken"}
    assert "nested/bad.alamode" in details["description"]
    assert "not a bencoded file, or truncated" in details["description"]
    # The broken DAG cannot succeed by mistake: its one task fails with the reason.
    states = airflow.run("alamode_broken__bad", "2026-01-01", ok=False)
    assert states == {"file_error": "failed"}
    assert "nested/bad.alamode" in airflow.last_log


def test_unknown_meta_key_is_reported_once_and_ignored(airflow):
    dag = Dag({"dag_id": "colourful", "color": "blue"})
    dag.task("hello", {"command": "true"})
    airflow.save(dag, "colourful")
    done = airflow.cli("dags", "reserialize")
    log = done.stdout + done.stderr
    assert log.count("meta key 'color' is not used by the Airflow engine; ignored") == 1


def test_bad_schedule_is_a_broken_dag_naming_the_file(airflow):
    good = Dag({"dag_id": "good", "schedule": "@daily"})
    good.task("hello", {"command": "true"})
    airflow.save(good, "good")
    typo = Dag({"dag_id": "typo", "schedule": "@dayly"})
    typo.task("hello", {"command": "true"})
    airflow.save(typo, "typo")

    dags = {d["dag_id"] for d in airflow.dag_list()}
    assert dags == {"good", "alamode_broken__typo"}
    assert airflow.json("dags", "list-import-errors") == []
    (details,) = airflow.json("dags", "details", "alamode_broken__typo")
    assert "typo.alamode: key 'meta.schedule': '@dayly' is not a cron" in details["description"]


def test_two_files_declaring_one_dag_id_the_later_is_broken_naming_the_earlier(airflow):
    dag = Dag({"dag_id": "report", "schedule": "@daily"})
    dag.task("hello", {"command": "true"})
    # Each with its own generated DAG file, as `alamode encode --dags-folder` writes it:
    # each is parsed in a process of its own, yet they see each other.
    for path in (airflow.dags / "report.alamode", airflow.dags / "team" / "report.alamode"):
        write_module(dag.save(path), load(path))
    # And one without a module, for the folder loader, under another name.
    dag.save(airflow.dags / "zz_copy.alamode")

    dags = {d["dag_id"]: d for d in airflow.dag_list()}
    assert set(dags) == {"report", "alamode_broken__report", "alamode_broken__zz_copy"}
    assert dags["report"]["fileloc"] == str(airflow.dags / "report.py")
    assert dags["alamode_broken__report"]["fileloc"] == str(airflow.dags / "team" / "report.py")
    assert airflow.json("dags", "list-import-errors") == []
    (details,) = airflow.json("dags", "details", "alamode_broken__report")
    assert (
        "team/report.alamode: dag_id 'report' is already declared by report.alamode; "
        "give one of them another meta dag_id"
    ) in details["description"]
    (details,) = airflow.json("dags", "details", "alamode_broken__zz_copy")
    assert (
        "zz_copy.alamode: dag_id 'report' is already declared by report.alamode"
        in (details["description"])
    )


def test_dag_ids_are_compared_through_symlinked_folders_and_within_each_bundle(airflow, tmp_path):
    # A subfolder of the dags folder that is a link to another place (Airflow follows it).
    elsewhere = tmp_path / "elsewhere"
    (airflow.dags / "team").symlink_to(elsewhere)
    # And a second DAG bundle, outside the dags folder, with two teams' subfolders.
    bundle = tmp_path / "dag_bundles" / "repo"
    for dag_id, paths in (
        ("report", [airflow.dags / "report.alamode", elsewhere / "report.alamode"]),
        ("shared", [bundle / "team1" / "shared.alamode", bundle / "team2" / "shared.alamode"]),
    ):
        dag = Dag({"dag_id": dag_id})
        dag.task("hello", {"command": "true"})
        for path in paths:
            write_module(dag.save(path), load(path))
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
        {"name": "repo", "classpath": local, "kwargs": {"path": str(bundle)}},
    ]
    env = (("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles)),)
    both = Airflow(airflow.home, airflow.dags, extra_env=env)

    dags = {(d["bundle_name"], d["dag_id"]): d["fileloc"] for d in both.dag_list()}
    # Each bundle is compared within itself: its first file keeps the dag_id.
    assert dags == {
        ("dags-folder", "report"): str(airflow.dags / "report.py"),
        ("dags-folder", "alamode_broken__report"): str(airflow.dags / "team" / "report.py"),
        ("repo", "shared"): str(bundle / "team1" / "shared.py"),
        ("repo", "alamode_broken__shared"): str(bundle / "team2" / "shared.py"),
    }
    assert both.json("dags", "list-import-errors") == []
    (details,) = both.json("dags", "details", "alamode_broken__shared")
    assert (
        "team2/shared.alamode: dag_id 'shared' is already declared by team1/shared.alamode"
        in (details["description"])
    )
