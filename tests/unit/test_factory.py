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
    assert blur.env == {"RADIUS": "4"}  # the environment holds text
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
        ({"command": 7}, SpecValueError, "task 'a': key 'command': has no 'command'"),
        ({"command": "x", "cwd": 3}, SpecValueError, r"key 'cwd': must be a string, not 3"),
        ({"command": "x", "timeout": "30"}, SpecValueError, "key 'timeout': must be an integer"),
        ({"command": "x", "timeout": 0}, SpecValueError, "key 'timeout': must be at least 1"),
        ({"command": "x", "retries": "3"}, SpecValueError, "key 'retries': must be an integer"),
        ({"command": "x", "retries": -1}, SpecValueError, "key 'retries': must be at least 0"),
        ({"command": "x", "image": ["a"]}, SpecValueError, "key 'image': must be a string"),
        ({"command": "x", "sha": 5}, SpecValueError, "task 'a': key 'sha': must be a string"),
        ({"command": "x", "env": {"A": ["1"]}}, SpecValueError, "key 'env.A': must be a str"),
        ({"command": "x", "env": {"A": {}}}, SpecValueError, "key 'env.A': must be a str"),
        ({"command": "x", "env": {"A=B": "1"}}, SpecValueError, "key 'env.A=B': is not an"),
        ({"command": "x", "partition": "day"}, SpecValueError, "partition': must be 'interval'"),
    ],
)
def test_spec_errors(tmp_path, spec, error, message):
    dag = Dag({})
    dag.task("a", spec)
    with pytest.raises(error, match=message):
        built(dag, tmp_path)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"schedule": "@dayly"}, r"key 'meta.schedule': '@dayly' is not a cron expression"),
        ({"schedule": "61 * * * *"}, "key 'meta.schedule': '61 \\* \\* \\* \\*' is not a cron"),
        ({"max_active_runs": 0}, "key 'meta.max_active_runs': must be at least 1, not 0"),
        ({"retries": -2}, "key 'meta.retries': must be at least 0, not -2"),
        ({"catchup": 2}, "key 'meta.catchup': must be 0 or 1, not 2"),
        ({"tags": ["x" * 101]}, "key 'meta.tags': tag 'xxxx"),
        ({"start_date": "P1D"}, "key 'meta.start_date': 'P1D' is not a date"),
    ],
)
def test_meta_values_airflow_refuses_are_refused_by_key(tmp_path, meta, message):
    dag = Dag(meta)
    dag.task("a", {"command": "true"})
    with pytest.raises(SpecValueError, match=message):
        built(dag, tmp_path)


def test_loader_turns_a_bad_schedule_into_a_broken_dag_naming_the_file(tmp_path):
    good, bad = Dag({"dag_id": "good", "schedule": "@daily"}), Dag({"schedule": "@dayly"})
    good.task("a", {"command": "true"})
    bad.task("a", {"command": "true", "timeout": "30"})
    good.save(tmp_path / "good.alamode")
    bad.save(tmp_path / "typo.alamode")
    dags = load_dags(tmp_path)
    assert set(dags) == {"good", "alamode_broken__typo"}
    assert "typo.alamode: key 'meta.schedule': '@dayly' is not a cron expression" in (
        dags["alamode_broken__typo"].description
    )


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
    assert "two.alamode: dag_id 'same' is already declared by one.alamode" in (
        dags["alamode_broken__two"].description
    )


def test_rebuild_form_field_on_the_dag_copied_into_the_plan_only(collage, tmp_path):
    dag = built(collage, tmp_path)
    assert dag.params["rebuild"] == []
    assert "rebuild" in dag.doc_md
    # The plan reads it; no other task pays for a copy of it.
    assert "rebuild" in dag.task_dict["alamode_plan"].params
    assert "rebuild" not in dag.task_dict["blur"].params


def test_partitioned_pipeline_gets_real_intervals_or_a_broken_dag(tmp_path):
    hourly = Dag({"dag_id": "hourly", "schedule": "@hourly"})
    hourly.task("raw", {"command": "true", "partition": "interval"})
    manual = Dag({"dag_id": "manual"})
    manual.task("raw", {"command": "true", "partition": "interval"})
    hourly.save(tmp_path / "hourly.alamode")
    manual.save(tmp_path / "manual.alamode")
    dags = load_dags(tmp_path)
    assert set(dags) == {"hourly", "alamode_broken__manual"}
    assert type(dags["hourly"].timetable).__name__ == "CronDataIntervalTimetable"
    assert "manual.alamode: key 'meta.schedule': a pipeline with partitioned tasks needs" in (
        dags["alamode_broken__manual"].description
    )


def test_tasks_copied_from_a_template_are_what_building_each_task_gives(tmp_path):
    from collections.abc import MutableMapping, MutableSequence, MutableSet

    from airflow.serialization.serialized_objects import DagSerialization

    pod = {"spec": {"containers": [{"name": "base", "resources": {"limits": {"gpu": 1}}}]}}
    pipe = Dag({"dag_id": "copies", "schedule": "@hourly", "cwd": "code"})
    pipe.meta["defaults"] = {"pool": "db", "retries": 1, "executor_config": {"pod_override": pod}}
    raw = pipe.task("raw", {"command": "fetch", "partition": "interval", "env": {"N": 3}})
    clean = pipe.task("clean", {"command": "clean", "cwd": "sub", "timeout": 30, "retries": 2})
    gpu = pipe.task("train", {"command": "train", "image": "ml", "sha": "abc"})
    gpu.settings.update(pool="gpu", doc_md="Trains *the* model.")
    report = pipe.task("report", {"command": "report"})
    raw >> clean >> [gpu, report]
    path = pipe.save(tmp_path / "copies.alamode")
    pipeline = load(path)
    copied = build_dag(pipeline, path)
    each = build_dag(pipeline, path, templated=False)
    assert DagSerialization.to_dict(copied) == DagSerialization.to_dict(each)
    for name in pipeline.order:
        task, alone = copied.task_dict[name], each.task_dict[name]
        assert vars(task).keys() == vars(alone).keys()
        for engine in ("output_id", "inputs", "partitioned", "partitioned_inputs", "command"):
            assert getattr(task, engine) == getattr(alone, engine)
        for engine in ("image", "sha", "cwd", "env", "timeout_s", "storage_root"):
            assert getattr(task, engine) == getattr(alone, engine)
        assert task.preimage_source() == alone.preimage_source()
        assert (task.dag, task.task_group) == (copied, copied.task_group)
    assert copied.task_dict["train"].doc_md.startswith("Trains *the* model.")
    # report has raw's Airflow arguments, so it is a copy of raw; nothing either may
    # change is the other's: each has its own lists, dictionaries, sets and params.
    raw_task, report_task = copied.task_dict["raw"], copied.task_dict["report"]
    for name, value in vars(raw_task).items():
        if isinstance(value, (MutableMapping, MutableSequence, MutableSet)):
            assert vars(report_task)[name] is not value, name


def test_tasks_with_their_own_equal_settings_share_no_object(tmp_path):
    """Two tasks given equal pods of their own are each built with its own pod: a
    task policy that edits one task's pod leaves the other's alone (a copy shares a
    template's objects only where the file's defaults give every task one object)."""
    pod = {"spec": {"containers": [{"name": "base", "resources": {"limits": {"gpu": 1}}}]}}
    pipe = Dag({"dag_id": "pods"})
    for name in ("a", "b"):
        pipe.task(name, {"command": name}).settings.update(executor_config={"pod_override": pod})
    path = pipe.save(tmp_path / "pods.alamode")
    built = build_dag(load(path), path)
    a, b = (built.task_dict[name].executor_config["pod_override"] for name in ("a", "b"))
    assert a == b
    a.spec.containers[0].resources.limits["gpu"] = 8
    assert b.spec.containers[0].resources.limits["gpu"] == "1"


def test_a_part_of_the_dag_is_made_as_airflow_makes_one(tmp_path):
    """``DAG.partial_subset`` (a task and what is downstream of it) deep-copies the
    operators: the engine's arguments copy like any others."""
    pipe = Dag({"dag_id": "part"})
    first, second = pipe.task("a", {"command": "echo a"}), pipe.task("b", {"command": "echo b"})
    first >> second
    path = pipe.save(tmp_path / "part.alamode")
    pipeline = load(path)
    built = build_dag(pipeline, path)
    part = built.partial_subset(["a"], include_downstream=True)
    assert sorted(part.task_dict) == ["a", "alamode_plan", "b"]
    copied = part.get_task("b")
    assert copied.inputs == {"a": pipeline["a"].output}
    assert copied.preimage_source() == pipeline["b"].preimage()
