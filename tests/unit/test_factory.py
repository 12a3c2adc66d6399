"""The DAG factory's output, inspected without a database: what Airflow will show."""

from __future__ import annotations

from pathlib import Path

import pytest

from a_la_mode import Dag, SpecValueError, TaskNameError, load
from alamode_airflow.factory import build_dag
from alamode_airflow.loader import load_dags


def built(dag: Dag, tmp_path: Path, name: str = "pipe"):
    path = dag.save(tmp_path / "dags" / f"{name}.alamode")
    return build_dag(load(path), path)


def test_collage_dag_shape(collage, tmp_path):
    collage.meta["cwd"] = "../code"
    collage.blur.spec["cwd"] = "blur"
    collage.blur.spec["env"] = {"RADIUS": 4}
    collage.blur.spec["retries"] = 2
    collage.blur.spec["timeout"] = 60
    dag = built(collage, tmp_path)
    assert dag.dag_id == "collage"
    assert set(dag.task_dict) == {
        "alamode_plan",
        "download_images",
        "blur",
        "edge_enhance",
        "collage",
    }
    assert dag.task_dict["alamode_plan"].downstream_task_ids == {"download_images"}
    assert dag.task_dict["collage"].upstream_task_ids == {"blur", "edge_enhance"}
    blur = dag.task_dict["blur"]
    assert blur.trigger_rule == "none_failed"
    assert blur.cwd == str(tmp_path / "code" / "blur")
    assert dag.task_dict["collage"].cwd == str(tmp_path / "code")
    assert blur.env == {"RADIUS": 4}
    assert blur.retries == 2
    assert blur.timeout_s == 60
    assert blur.image == "collage"
    assert blur.sha == "6f09d"
    assert blur.output_id in blur.doc_md
    assert dag.task_dict["alamode_plan"].outputs["blur"] == blur.output_id


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({"image": "x"}, SpecValueError, "task 'a': key 'command': has no 'command'"),
        ({"command": "  "}, SpecValueError, "has no 'command'"),
        ({"command": "x", "env": ["A=1"]}, SpecValueError, "'env' must be a dictionary"),
        ({"command": "x", "cwd": 3}, SpecValueError, r"key 'tasks.a.cwd': must be a string"),
    ],
)
def test_spec_errors(tmp_path, spec, error, message):
    dag = Dag({})
    dag.task("a", spec)
    with pytest.raises(error, match=message):
        built(dag, tmp_path)


def test_plan_task_name_is_reserved(tmp_path):
    dag = Dag({})
    dag.task("alamode_plan", {"command": "true"})
    with pytest.raises(TaskNameError, match="'alamode_plan' is reserved"):
        built(dag, tmp_path)


def test_loader_turns_a_bad_spec_into_a_broken_dag_naming_the_file(tmp_path):
    good, bad = Dag({"dag_id": "good"}), Dag({"dag_id": "bad"})
    good.task("a", {"command": "true"})
    bad.task("a", {"image": "no command"})
    good.save(tmp_path / "good.alamode")
    bad.save(tmp_path / "sub" / "bad.alamode")
    (tmp_path / ".hidden").mkdir()
    good.save(tmp_path / ".hidden" / "ignored.alamode")
    dags = load_dags(tmp_path)
    assert set(dags) == {"good", "alamode_broken__bad"}
    assert "bad.alamode: task 'a': key 'command': has no 'command'" in (
        dags["alamode_broken__bad"].description
    )


def test_two_files_claiming_one_dag_id(tmp_path):
    dag = Dag({"dag_id": "same"})
    dag.task("a", {"command": "true"})
    dag.save(tmp_path / "one.alamode")
    dag.save(tmp_path / "two.alamode")
    dags = load_dags(tmp_path)
    assert set(dags) == {"same", "alamode_broken__two"}
    assert "dag_id 'same' is used by another file" in dags["alamode_broken__two"].description


def test_rebuild_form_field_only_up_to_the_configured_size(collage, tmp_path, monkeypatch):
    dag = built(collage, tmp_path)
    assert dag.params["rebuild"] == []
    assert "rebuild" in dag.doc_md
    monkeypatch.setenv("AIRFLOW__ALAMODE__REBUILD_FORM_MAX_TASKS", "3")
    assert "rebuild" not in built(collage, tmp_path).params
