"""Execution settings: from a file's meta onto Airflow's operator arguments, outside
every output ID, and refused by name when Airflow would refuse them."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from a_la_mode import Dag, SpecValueError, load
from alamode_airflow.factory import build_dag
from alamode_airflow.loader import load_dags
from tests.unit.test_seed import BLUR, COLLAGE, DOWNLOAD, EDGE, seed_dag


def built(dag: Dag, tmp_path: Path, name: str = "pipe"):
    path = dag.save(tmp_path / "dags" / f"{name}.alamode")
    return build_dag(load(path), path)


def outputs(dag: Dag) -> dict[str, str]:
    return {name: record["output"] for name, record in dag.encode()["tasks"].items()}


OPERATED = {
    "email": ["ops@example.com"],
    "pool": "gpu",
    "pool_slots": 2,
    "queue": "gpu_workers",
    "priority_weight": 10,
    "weight_rule": "absolute",
    "retries": 3,
    "retry_delay": 30,
    "retry_exponential_backoff": 2,
    "max_retry_delay": 600,
    "execution_timeout": 3600,
    "max_active_tis_per_dag": 1,
    "owner": "images-team",
    "doc_md": "Blurs *every* image.",
}


def test_settings_change_no_output_id():
    seed = seed_dag()
    plain = seed.bencode()
    seed.meta["defaults"] = {"pool": "db", "retries": 1}
    seed.meta["max_active_tasks"] = 2
    seed.blur.settings.update(OPERATED)
    seed.collage.settings.update(queue="big", priority_weight=-3)
    assert outputs(seed) == {
        "download_images": DOWNLOAD,
        "blur": BLUR,
        "edge_enhance": EDGE,
        "collage": COLLAGE,
    }
    # The file itself changed (meta is covered by the file digest).
    assert seed.bencode() != plain


def test_every_task_setting_reaches_the_operator(collage, tmp_path):
    collage.blur.settings.update(OPERATED)
    blur = built(collage, tmp_path).task_dict["blur"]
    assert blur.pool == "gpu"
    assert blur.pool_slots == 2
    assert blur.queue == "gpu_workers"
    assert blur.priority_weight == 10
    assert blur.weight_rule == "absolute"
    assert blur.retries == 3
    assert blur.retry_delay == datetime.timedelta(seconds=30)
    assert blur.retry_exponential_backoff == 2
    assert blur.max_retry_delay == datetime.timedelta(minutes=10)
    assert blur.execution_timeout == datetime.timedelta(hours=1)
    assert blur.max_active_tis_per_dag == 1
    assert blur.owner == "images-team"
    # The user's docs come first; the output ID and spec stay in the task's docs.
    assert blur.doc_md.startswith("Blurs *every* image.")
    assert blur.output_id in blur.doc_md


def test_defaults_then_spec_then_task_settings(collage, tmp_path):
    collage.meta["defaults"] = {"pool": "db", "retries": 1, "queue": "io"}
    collage.blur.spec["retries"] = 2  # older files: part of blur's ID, still honoured
    collage.blur.settings["pool"] = "gpu"
    collage.edge_enhance.spec["retries"] = 2
    collage.edge_enhance.settings["retries"] = 5
    dag = built(collage, tmp_path)
    blur, edge, dl = (dag.task_dict[n] for n in ("blur", "edge_enhance", "download_images"))
    assert (blur.pool, blur.retries, blur.queue) == ("gpu", 2, "io")
    assert (edge.pool, edge.retries) == ("db", 5)
    assert (dl.pool, dl.retries, dl.owner) == ("db", 1, "alamode")
    # The engine's plan task runs where the file's tasks run: a deployment whose
    # workers listen only to "io" must run it too.
    plan = dag.task_dict["alamode_plan"]
    assert (plan.pool, plan.queue, plan.retries) == ("db", "io", 1)


def test_the_plan_task_does_not_take_what_sizes_a_tasks_resources(collage, tmp_path):
    pod = {"spec": {"containers": [{"name": "base", "resources": {"limits": {"gpu": 1}}}]}}
    collage.meta["defaults"] = {"executor_config": {"pod_override": pod}, "pool_slots": 4}
    dag = built(collage, tmp_path)
    plan, blur = dag.task_dict["alamode_plan"], dag.task_dict["blur"]
    assert (plan.executor_config, plan.pool_slots) == ({}, 1)
    assert (blur.pool_slots, "pod_override" in blur.executor_config) == (4, True)


def test_older_top_level_retries_and_owner_still_apply(collage, tmp_path):
    collage.meta.update(retries=4, owner="ana")
    blur = built(collage, tmp_path).task_dict["blur"]
    assert (blur.retries, blur.owner) == (4, "ana")


def test_spec_timeout_kills_the_command_until_meta_sets_an_execution_timeout(collage, tmp_path):
    collage.blur.spec["timeout"] = 60
    collage.collage.spec["timeout"] = 60
    collage.meta["defaults"] = {"execution_timeout": 7200}
    collage.collage.settings["execution_timeout"] = 120
    dag = built(collage, tmp_path)
    blur, last = dag.task_dict["blur"], dag.task_dict["collage"]
    # blur's spec timeout still kills its command; the file's default still limits
    # the whole attempt (two mechanisms, both kept).
    assert (blur.timeout_s, blur.execution_timeout) == (60, datetime.timedelta(hours=2))
    assert (last.timeout_s, last.execution_timeout) == (None, datetime.timedelta(minutes=2))
    assert dag.task_dict["edge_enhance"].execution_timeout == datetime.timedelta(hours=2)


def test_dag_level_settings(collage, tmp_path):
    collage.meta.update(
        max_active_tasks=3, dagrun_timeout=5400, tags=["images"], doc_md="Daily *collage*."
    )
    dag = built(collage, tmp_path)
    assert dag.max_active_tasks == 3
    assert dag.dagrun_timeout == datetime.timedelta(minutes=90)
    assert dag.tags == {"alamode", "images"}
    assert dag.doc_md.startswith("Daily *collage*.")


def test_pod_override_becomes_a_kubernetes_pod(collage, tmp_path):
    from kubernetes.client import V1Pod

    pod = {
        "spec": {
            "nodeSelector": {"accelerator": "a100"},
            "containers": [{"name": "base", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        }
    }
    collage.blur.settings["executor_config"] = {"pod_override": pod}
    config = built(collage, tmp_path).task_dict["blur"].executor_config
    override = config["pod_override"]
    assert isinstance(override, V1Pod)
    assert override.spec.node_selector == {"accelerator": "a100"}
    assert override.spec.containers[0].resources.limits == {"nvidia.com/gpu": "1"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"retires": 3}, r"key 'meta\.tasks\.blur\.retires': is not an execution setting"),
        ({"retries": "3"}, r"key 'meta\.tasks\.blur\.retries': must be an integer, not '3'"),
        ({"retries": -1}, r"key 'meta\.tasks\.blur\.retries': must be at least 0"),
        ({"pool": ""}, r"key 'meta\.tasks\.blur\.pool': must be a non-empty string"),
        ({"pool_slots": 0}, r"key 'meta\.tasks\.blur\.pool_slots': must be at least 1"),
        ({"weight_rule": "most"}, r"key 'meta\.tasks\.blur\.weight_rule': must be one of"),
        ({"priority_weight": 2**40}, r"key 'meta\.tasks\.blur\.priority_weight': must be"),
        ({"execution_timeout": 0}, r"key 'meta\.tasks\.blur\.execution_timeout': must be at"),
        ({"email": ["a@b", 3]}, r"key 'meta\.tasks\.blur\.email\[1\]': must be a non-empty"),
        ({"executor_config": "big"}, r"key 'meta\.tasks\.blur\.executor_config': must be a"),
        (
            {"executor_config": {"pod_overide": {}}},
            r"key 'meta\.tasks\.blur\.executor_config\.pod_overide': is not read by any executor",
        ),
        (
            {"executor_config": {"pod_override": {"spec": {"nodeSelector": {}}}}},
            r"key 'meta\.tasks\.blur\.executor_config\.pod_override': is not a Kubernetes pod: "
            "Invalid value for `containers`",
        ),
        (
            {"executor_config": {"pod_override": {"spec": {"containers": [], "nodeSelecter": 1}}}},
            r"key 'meta\.tasks\.blur\.executor_config\.pod_override\.spec\.nodeSelecter': "
            "is not a field of a Kubernetes pod",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_task_and_key(collage, tmp_path, settings, message):
    collage.blur.settings.update(settings)
    with pytest.raises(SpecValueError, match=r"task 'blur': " + message):
        built(collage, tmp_path)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"tasks": {"blurr": {"pool": "gpu"}}}, r"key 'meta\.tasks': names no task .*'blurr'"),
        ({"defaults": {"queue": 5}}, r"key 'meta\.defaults\.queue': must be a non-empty string"),
        ({"defaults": ["pool"]}, r"key 'meta\.defaults': must be a dictionary"),
        ({"retries": 2, "defaults": {"retries": 1}}, r"key 'meta\.retries': is set twice"),
    ],
)
def test_bad_file_settings_are_refused_by_key(collage, tmp_path, meta, message):
    collage.meta.update(meta)
    with pytest.raises(SpecValueError, match=message):
        built(collage, tmp_path)


def test_a_bad_setting_breaks_only_its_own_file(collage, tmp_path):
    collage.blur.settings["queue"] = 7
    collage.save(tmp_path / "dags" / "bad.alamode")
    Dag({"dag_id": "good"}).save(tmp_path / "dags" / "good.alamode")
    dags = load_dags(tmp_path / "dags")
    assert "good" in dags
    broken = dags["alamode_broken__bad"]
    assert broken.description == (
        "BROKEN: bad.alamode: task 'blur': key 'meta.tasks.blur.queue': "
        "must be a non-empty string, not 7"
    )


def test_dsl_settings_and_written_meta_settings_merge_but_never_collide(collage):
    collage.meta["tasks"] = {"blur": {"queue": "gpu"}, "collage": {"pool": "db"}}
    collage.blur.settings["pool"] = "gpu"
    assert collage.encode()["meta"]["tasks"] == {
        "blur": {"queue": "gpu", "pool": "gpu"},
        "collage": {"pool": "db"},
    }
    collage.blur.settings["queue"] = "cpu"
    with pytest.raises(SpecValueError, match=r"task 'blur': .*set both in meta and as task"):
        collage.encode()


def test_spec_retries_are_pointed_to_meta_once_per_file(collage, tmp_path, caplog):
    collage.blur.spec["retries"] = 2
    path = collage.save(tmp_path / "dags" / "said.alamode")
    for _ in range(3):  # the DAG processor parses a file again and again
        build_dag(load(path), path)
    said = [r.getMessage() for r in caplog.records if "spec key 'retries'" in r.getMessage()]
    assert said == [
        f"{path}: task 'blur': spec key 'retries' is part of its output ID; change it through"
        " meta tasks.blur.retries, which recomputes nothing (see the README)"
    ]


def test_email_is_an_smtp_notifier_beside_the_other_failure_notifiers(collage, tmp_path):
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    collage.meta["defaults"] = {"on_failure": [{"notifier": "http", "conn_id": "ops_alerts"}]}
    collage.blur.settings["email"] = ["ops@example.com", "ana@example.com"]
    dag = built(collage, tmp_path)
    http, smtp = dag.task_dict["blur"].on_failure_callback
    assert isinstance(http, HttpNotifier)
    assert isinstance(smtp, SmtpNotifier)
    assert smtp.to == ["ops@example.com", "ana@example.com"]
    # Not the operator's own email, which Airflow 3 deprecates.
    assert not dag.task_dict["blur"].email
    (only,) = dag.task_dict["collage"].on_failure_callback
    assert isinstance(only, HttpNotifier)


def test_a_task_silences_the_files_email_or_notifiers_on_its_own(collage, tmp_path):
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    http = {"notifier": "http", "conn_id": "ops_alerts"}
    collage.meta["defaults"] = {"on_failure": [http], "email": "ops@example.com"}
    collage.blur.settings["email"] = []
    collage.edge_enhance.settings["on_failure"] = []
    dag = built(collage, tmp_path)

    def kinds(name: str) -> list[str]:
        callbacks = dag.task_dict[name].on_failure_callback
        return [
            k.__name__ for n in callbacks for k in (HttpNotifier, SmtpNotifier) if isinstance(n, k)
        ]

    assert kinds("blur") == ["HttpNotifier"]
    assert kinds("edge_enhance") == ["SmtpNotifier"]
    assert kinds("collage") == ["HttpNotifier", "SmtpNotifier"]


def test_a_setting_written_into_the_spec_is_pointed_to_meta(collage, tmp_path, caplog):
    collage.blur.spec["queue"] = "gpu"  # an easy mistake: it is part of the ID, not a queue
    path = collage.save(tmp_path / "dags" / "slip.alamode")
    blur = build_dag(load(path), path).task_dict["blur"]
    assert blur.queue == "default"
    said = [r.getMessage() for r in caplog.records if "spec key 'queue'" in r.getMessage()]
    assert said == [
        f"{path}: task 'blur': spec key 'queue' is part of its output ID; it is not an"
        " execution setting there: did you mean meta tasks.blur.queue? (see the README)"
    ]
