"""Notifiers and deadline alerts from a file: a fixed table of kinds, never code the
file names, every refusal naming the task and the key."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from types import MappingProxyType

import pytest
from airflow.providers.http.notifications.http import HttpNotifier
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import DAG, AsyncCallback, DeadlineReference
from airflow.serialization.serialized_objects import DagSerialization

from a_la_mode import AlamodeError, Dag, SpecValueError, load
from alamode_airflow.factory import build_dag
from alamode_airflow.loader import load_dags
from alamode_airflow.notify import SUMMARY, deadline_alerts, notifiers

HOOK = {"notifier": "http", "conn_id": "ops_alerts", "endpoint": "/hooks/airflow"}
MAIL = {"notifier": "smtp", "to": ["ops@example.com", "oncall@example.com"], "conn_id": "mail"}
#: A module that leaves a mark when imported, and defines two notifiers.
CANARY = """
import pathlib
from airflow.sdk import BaseNotifier
pathlib.Path(__file__).with_name("imported").touch()

class Loud(BaseNotifier):
    template_fields = ("channel",)
    def __init__(self, channel, **kwargs):
        super().__init__(**kwargs)
        self.channel = channel
    def notify(self, context):
        pass

class SyncOnly(BaseNotifier):
    def notify(self, context):
        pass
"""


@pytest.fixture
def canary(tmp_path, monkeypatch) -> Path:
    """Module ``alamode_canary`` on the path, not imported yet; returns its mark."""
    (tmp_path / "alamode_canary.py").write_text(CANARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "alamode_canary", raising=False)
    return tmp_path / "imported"


def test_http_builds_airflows_notifier_on_the_named_connection():
    (notifier,) = notifiers([HOOK], key="meta.on_failure")
    assert isinstance(notifier, HttpNotifier)
    assert (notifier.http_conn_id, notifier.endpoint, notifier.method) == (
        "ops_alerts",
        "/hooks/airflow",
        "POST",
    )
    assert set(notifier.json) == set(SUMMARY)


def test_smtp_builds_airflows_notifier_to_one_or_many():
    (many,) = notifiers([MAIL], key="meta.on_failure")
    assert isinstance(many, SmtpNotifier)
    assert (many.to, many.smtp_conn_id) == (["ops@example.com", "oncall@example.com"], "mail")
    (one,) = notifiers([{"notifier": "smtp", "to": "ops@example.com", "from": "af@x"}], key="k")
    assert (one.to, one.from_email) == ("ops@example.com", "af@x")
    assert "{{" in one.subject
    assert "{{" in one.html_content


def kinds(callbacks: list) -> list[str]:
    return ["http" if isinstance(n, HttpNotifier) else "smtp" for n in callbacks]


def test_a_loaded_files_settings_reach_the_dag_and_its_tasks(tmp_path):
    dag = Dag(
        {
            "dag_id": "alerting",
            "on_failure": [HOOK],
            "deadline": {"reference": "queued", "within": 600, "notify": [HOOK, MAIL]},
            "defaults": {"on_failure": [MAIL]},
        }
    )
    dag.task("blur", {"command": "true"}, on_failure=[HOOK])
    dag.task("edge", {"command": "true"})
    path = dag.save(tmp_path / "alerting.alamode")
    built = build_dag(load(path), path)  # a loaded file's meta is frozen
    assert kinds(built.on_failure_callback) == ["http"]
    assert kinds(built.get_task("blur").on_failure_callback) == ["http"]
    assert kinds(built.get_task("edge").on_failure_callback) == ["smtp"]
    assert [a.callback.path.rsplit(".", 1)[1] for a in built.deadline] == [
        "HttpNotifier",
        "SmtpNotifier",
    ]


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        ({"notifier": "http"}, "meta.tasks.blur.on_failure", "a list of notifiers"),
        (["http"], "meta.tasks.blur.on_failure[0]", "a dictionary naming a notifier"),
        ([{"conn_id": "x"}], "meta.tasks.blur.on_failure[0].notifier", "must name a notifier"),
        ([{"notifier": "slack"}], "meta.tasks.blur.on_failure[0].notifier", "one of http, smtp"),
        ([{"notifier": "http"}], "meta.tasks.blur.on_failure[0].conn_id", "needs 'conn_id'"),
        ([{**HOOK, "url": "x"}], "meta.tasks.blur.on_failure[0].url", "takes conn_id, endpoint"),
        ([{**HOOK, "conn_id": 7}], "meta.tasks.blur.on_failure[0].conn_id", "non-empty string"),
        ([HOOK, {**HOOK, "endpoint": b"/x"}], "blur.on_failure[1].endpoint", "non-empty string"),
        ([{**MAIL, "to": []}], "meta.tasks.blur.on_failure[0].to", "or a list of them"),
        ([{**MAIL, "to": ["a@b", 3]}], "meta.tasks.blur.on_failure[0].to", "or a list of them"),
    ],
)
def test_each_refusal_names_the_task_and_the_key(value, key, reason):
    with pytest.raises(SpecValueError, match=reason) as refused:
        notifiers(value, key="meta.tasks.blur.on_failure", task="blur")
    assert refused.value.task == "blur"
    assert refused.value.key.endswith(key)
    assert str(refused.value).startswith(f"task 'blur': key '{refused.value.key}'")


def test_a_bad_notifier_makes_the_file_its_broken_dag_naming_file_task_and_key(tmp_path):
    dag = Dag({"dag_id": "alerting"})
    dag.task("blur", {"command": "true"}, on_failure=[{"notifier": "http", "conn": "ops"}])
    dag.save(tmp_path / "alerting.alamode")
    (broken,) = load_dags(tmp_path).values()
    assert broken.dag_id == "alamode_broken__alerting"
    assert broken.description.startswith(
        "BROKEN: alerting.alamode: task 'blur': key 'meta.tasks.blur.on_failure[0].conn':"
    )


def test_a_file_cannot_name_code_to_import(canary):
    with pytest.raises(SpecValueError, match="a dotted path is not accepted") as refused:
        notifiers([{"notifier": "alamode_canary.Loud", "channel": "x"}], key="meta.on_failure")
    assert refused.value.key == "meta.on_failure[0].notifier"
    assert not canary.exists()
    assert "alamode_canary" not in sys.modules


def test_the_deployer_adds_kinds_imported_only_when_a_file_uses_them(canary, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__NOTIFIERS", "loud = alamode_canary.Loud, quiet=x.Y")
    notifiers([HOOK], key="meta.on_failure")
    assert not canary.exists()
    (loud,) = notifiers([{"notifier": "loud", "channel": "#ops"}], key="meta.on_failure")
    assert canary.exists()
    assert (type(loud).__name__, loud.channel) == ("Loud", "#ops")
    with pytest.raises(SpecValueError, match="refuses it") as refused:
        notifiers([{"notifier": "loud", "chanel": "#ops"}], key="meta.on_failure", task="t")
    assert (refused.value.key, refused.value.task) == ("meta.on_failure[0]", "t")
    with pytest.raises(AlamodeError, match=r"cannot import x\.Y") as missing:
        notifiers([{"notifier": "quiet"}], key="meta.on_failure")
    assert missing.value.key == "[alamode] notifiers"


@pytest.mark.parametrize("setting", ["http=alamode_canary.Loud", "loud", "loud=Loud"])
def test_a_deployer_entry_that_is_not_a_new_name_and_a_class_is_refused(
    canary, monkeypatch, setting
):
    monkeypatch.setenv("AIRFLOW__ALAMODE__NOTIFIERS", setting)
    with pytest.raises(AlamodeError, match=r"is not NAME=module\.Class") as refused:
        notifiers([HOOK], key="meta.on_failure")
    assert refused.value.key == "[alamode] notifiers"
    assert not canary.exists()


def test_one_notifier_called_twice_tells_each_failure_apart(monkeypatch):
    """Airflow renders a notifier in place; a shared one must not repeat itself."""
    (notifier,) = notifiers([HOOK], key="meta.defaults.on_failure")
    bodies = []
    monkeypatch.setattr(HttpNotifier, "notify", lambda self, context: bodies.append(self.json))
    dag = DAG(dag_id="alerting", schedule=None)
    notifier({"dag": dag, "run_id": "run_1", "reason": "task_failure"})
    notifier({"dag": dag, "run_id": "run_2", "reason": "task_failure"})
    assert [body["run_id"] for body in bodies] == ["run_1", "run_2"]
    assert "{{" in notifier.json["run_id"]  # the notifier itself stays a template


def test_the_summary_renders_in_a_runs_context_without_its_task():
    """The dag-processor's context when the failed task is gone from the DAG: no ti,
    no task; Airflow renders a DAG's templates with StrictUndefined."""
    (notifier,) = notifiers([HOOK], key="meta.on_failure")
    dag = DAG(dag_id="alerting", schedule=None)
    notifier.render_template_fields({"dag": dag, "run_id": "r1", "reason": "task_failure"})
    assert notifier.json == {
        **dict.fromkeys(SUMMARY, ""),
        "event": "dag_run_failed",
        "dag_id": "alerting",
        "run_id": "r1",
        "state": "failed",
        "reason": "task_failure",
    }


def test_a_deadline_becomes_airflows_alert_with_the_notifier_as_async_callback():
    value = MappingProxyType({"reference": "logical_date", "within": 90, "notify": (HOOK,)})
    (alert,) = deadline_alerts(value)
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.interval == datetime.timedelta(seconds=90)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "airflow.providers.http.notifications.http.HttpNotifier"
    assert alert.callback.kwargs["http_conn_id"] == "ops_alerts"
    assert set(alert.callback.kwargs["json"]) == set(SUMMARY)
    queued = {"reference": "queued", "within": 60, "notify": [MAIL]}
    alerts = deadline_alerts([queued, value])
    assert [a.reference for a in alerts] == [
        DeadlineReference.DAGRUN_QUEUED_AT,
        DeadlineReference.DAGRUN_LOGICAL_DATE,
    ]


def test_a_dag_with_deadlines_and_notifiers_serializes_as_the_dag_processor_stores_it():
    hooks = {"reference": "queued", "within": 600, "notify": [HOOK]}
    dag = DAG(
        dag_id="alerting",
        schedule=None,
        deadline=deadline_alerts(hooks),
        on_failure_callback=notifiers([HOOK], key="meta.on_failure"),
    )
    stored = DagSerialization.to_dict(dag)["dag"]
    assert stored["has_on_failure_callback"] is True
    (alert,) = DagSerialization.from_dict({"__version": 3, "dag": stored}).deadline
    assert alert["reference"] == {"reference_type": "DagRunQueuedAtDeadline"}
    assert alert["interval"]["__data__"] == 600.0
    callback = alert["callback"]["__data__"]
    assert callback["path"] == "airflow.providers.http.notifications.http.HttpNotifier"
    assert callback["kwargs"]["endpoint"] == "/hooks/airflow"


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        ("1h", "meta.deadline", "a dictionary or a list"),
        ({"reference": "queued", "within": 60}, "meta.deadline.notify", "is required"),
        (
            {"reference": "start", "within": 60, "notify": [HOOK]},
            "meta.deadline.reference",
            "one of",
        ),
        (
            {"reference": "queued", "within": 0, "notify": [HOOK]},
            "meta.deadline.within",
            "at least 1",
        ),
        (
            {"reference": "queued", "within": "60", "notify": [HOOK]},
            "meta.deadline.within",
            "at least 1",
        ),
        (
            {"reference": "queued", "within": True, "notify": [HOOK]},
            "meta.deadline.within",
            "at least 1",
        ),
        (
            [{"reference": "queued", "within": 60, "notify": [HOOK], "every": 5}],
            "meta.deadline[0].every",
            "unknown key",
        ),
        (
            {"reference": "queued", "within": 60, "notify": [{"notifier": "http"}]},
            "meta.deadline.notify[0].conn_id",
            "needs",
        ),
    ],
)
def test_each_deadline_refusal_names_the_key(value, key, reason):
    with pytest.raises(SpecValueError, match=reason) as refused:
        deadline_alerts(value)
    assert refused.value.key == key


def test_a_deadline_refuses_a_notifier_the_triggerer_cannot_await(canary, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__NOTIFIERS", "sync=alamode_canary.SyncOnly")
    value = {"reference": "queued", "within": 60, "notify": [HOOK, {"notifier": "sync"}]}
    with pytest.raises(SpecValueError, match="no async_notify") as refused:
        deadline_alerts(value)
    assert refused.value.key == "meta.deadline.notify[1].notifier"
