"""Failure notifications and deadline alerts, configured from a pipeline file's meta.

A file names a notifier *kind* from a fixed table (``http``, ``smtp``; see ``KINDS``),
never a dotted path, so loading a file never imports code the file names. The deployer,
not the file, may add kinds in Airflow's config::

    [alamode]
    notifiers = slack=airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier

and such a class is imported only when a file uses its kind. Addresses and secrets stay
in Airflow connections; the file names a connection ID.

Shapes (meta ``on_failure``, and the same per task)::

    "on_failure": [{"notifier": "http", "conn_id": "ops_alerts", "endpoint": "/hooks/airflow"},
                   {"notifier": "smtp", "to": ["ops@example.com"], "conn_id": "smtp_default"}]
    "deadline": {"reference": "queued", "within": 3600, "notify": [<notifier specs>]}

``deadline`` may also be a list of such dictionaries. Each notifier of a deadline becomes
one Airflow ``DeadlineAlert`` whose ``AsyncCallback`` is the notifier class itself: the
scheduler notices the missed deadline and the triggerer awaits the notifier, so a deadline
notifier must implement ``async_notify`` (both built-in kinds do).

The built-in kinds send a summary rendered by Airflow's templating from whatever the
callback's context holds (see ``SUMMARY``): a task's failure (its worker runs the
callback), a run's failure (the dag-processor, or ``airflow dags test`` itself) and a
missed deadline (the triggerer) each provide a different context. Every error names the
key (``meta.on_failure[0].conn_id``) and the task, so a bad file becomes its broken DAG.
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from a_la_mode import AlamodeError, SpecValueError
from a_la_mode.values import thaw
from alamode_airflow import settings
from alamode_airflow._compat import AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference

#: The summary every built-in notifier sends: field -> Jinja expression. Each holds in
#: every callback context: a task's (``ti``, ``task``, ``exception``), a run's (``reason``,
#: and the last failed task's ``ti`` when Airflow has it) and a missed deadline's
#: (``dag_run`` as a dictionary, ``deadline``). Airflow renders a DAG's templates with
#: StrictUndefined, so every name is tested with ``is defined`` before it is read.
SUMMARY: dict[str, str] = {
    "event": (
        "'deadline_missed' if deadline is defined"
        " else ('dag_run_failed' if reason is defined else 'task_failed')"
    ),
    "dag_id": "dag.dag_id if dag is defined else dag_run.dag_id",
    "run_id": "run_id if run_id is defined else dag_run.dag_run_id",
    "task_id": "ti.task_id if ti is defined else ''",
    "output_id": "task.output_id if task is defined and task.output_id is defined else ''",
    # A failure callback runs only on failure; Airflow's own state is an enum here.
    "state": "dag_run.state if deadline is defined else 'failed'",
    "try_number": "ti.try_number if ti is defined else ''",
    "reason": (
        "exception if exception is defined and exception"
        " else (reason if reason is defined"
        " else ('deadline ' ~ deadline.deadline_time ~ ' passed' if deadline is defined"
        " else ''))"
    ),
    "log_url": "ti.log_url if ti is defined else ''",
    "deadline": "deadline.deadline_time if deadline is defined else ''",
}
SUBJECT = "[airflow] " + " ".join(
    "{{ " + SUMMARY[f] + " }}" for f in ("event", "dag_id", "task_id")
)


def summary_json() -> dict[str, str]:
    """The http notifier's JSON body: every SUMMARY field as a template string."""
    return {field: "{{ " + expression + " }}" for field, expression in SUMMARY.items()}


def summary_html() -> str:
    """The smtp notifier's body: the same fields as an HTML table, values escaped."""
    rows = "".join(
        f"<tr><td>{field}</td><td>{{{{ ({expression}) | e }}}}</td></tr>"
        for field, expression in SUMMARY.items()
    )
    return f"<table>{rows}</table>"


@dataclass(frozen=True)
class Arg:
    """One argument a file may give a built-in kind."""

    keyword: str  # the notifier class's keyword argument
    kind: str  # "string" or "strings" (a string or a list of strings)
    required: bool = False


@dataclass(frozen=True)
class Kind:
    """A notifier kind: the class (``module.Name``, imported when first used), the
    arguments a file may give it (None: a deployer's kind, given its arguments as they
    are), and the arguments our code adds."""

    target: str
    args: Mapping[str, Arg] | None = None
    fixed: Callable[[], dict[str, Any]] = dict

    def load(self, name: str, task: str | None) -> type:
        module, _, attribute = self.target.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            where = "its provider is not installed" if self.args is not None else "see the setting"
            raise AlamodeError(
                f"notifier kind {name!r}: cannot import {self.target} ({where}): {exc}",
                task=task,
                key=f"[alamode] {SETTING}" if self.args is None else None,
            ) from None
        if not (isinstance(found, type) and issubclass(found, BaseNotifier)):
            raise AlamodeError(
                f"notifier kind {name!r}: {self.target} is not an Airflow notifier class",
                key=f"[alamode] {SETTING}",
            )
        return found


KINDS: dict[str, Kind] = {
    "http": Kind(
        "airflow.providers.http.notifications.http.HttpNotifier",
        {
            "conn_id": Arg("http_conn_id", "string", required=True),
            "endpoint": Arg("endpoint", "string"),
        },
        lambda: {"method": "POST", "json": summary_json()},
    ),
    "smtp": Kind(
        "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
        {
            "to": Arg("to", "strings", required=True),
            "conn_id": Arg("smtp_conn_id", "string"),
            "from": Arg("from_email", "string"),
        },
        lambda: {"subject": SUBJECT, "html_content": summary_html()},
    ),
}
SETTING = "notifiers"  # [alamode] notifiers: the deployer's kinds
KIND_KEY = "notifier"


def notifiers(value: Any, *, key: str, task: str | None = None) -> list[BaseNotifier]:
    """The notifiers (Airflow ``BaseNotifier`` instances, fresh for each call: Airflow
    renders a notifier's fields in place) for a file's ``on_failure`` value, a list of
    notifier specs; None gives none."""
    return [_build(spec, where)[0] for spec, where in _specs(value, key, task)]


class _RenderedPerCall:
    """A notifier that renders a copy of itself at each call. Airflow renders a
    notifier's templated fields in place, so one instance called twice in a process
    (``defaults.on_failure`` shared by every task under ``airflow dags test``, or the
    dag-processor running the callbacks of two failed runs) would send the first
    call's summary again."""

    def __call__(self, *args: Any) -> None:
        if len(args) == 1 and not hasattr(args[0].get("dag"), "get_template_env"):
            # `airflow dags test` (Airflow 3.3) gives a run's callbacks the serialized
            # DAG, which cannot render templates (Airflow issue 64649): render without
            # it, as the triggerer does; the summary reads the run's dag_id instead.
            args = ({k: v for k, v in args[0].items() if k != "dag"},)
        return super(_RenderedPerCall, copy.copy(self)).__call__(*args)


@functools.cache
def rendered_per_call(cls: type) -> type:
    """``cls`` with ``_RenderedPerCall`` first in its method order."""
    return type(cls.__name__, (_RenderedPerCall, cls), {"__module__": cls.__module__})


def deadline_alerts(value: Any, *, key: str = "meta.deadline") -> list[DeadlineAlert]:
    """Airflow ``DeadlineAlert`` objects for a file's ``deadline`` value: one dictionary
    or a list of them, each ``{"reference": "queued" | "logical_date", "within":
    <seconds, at least 1>, "notify": [notifier specs]}``; None gives none."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return _deadline(value, key)
    if not isinstance(value, (list, tuple)):
        raise SpecValueError(_wrong("a dictionary or a list of them", value), key=key)
    alerts = []
    for index, item in enumerate(value):
        alerts.extend(_deadline(item, f"{key}[{index}]"))
    return alerts


def _deadline(value: Any, key: str) -> list[DeadlineAlert]:
    references = {
        "queued": DeadlineReference.DAGRUN_QUEUED_AT,
        "logical_date": DeadlineReference.DAGRUN_LOGICAL_DATE,
    }
    _keys(value, key, ("reference", "within", "notify"))
    reference = value["reference"]
    if reference not in references:
        choices = ", ".join(map(repr, references))
        raise SpecValueError(f"must be one of {choices}, not {reference!r}", key=f"{key}.reference")
    within = value["within"]
    if isinstance(within, bool) or not isinstance(within, int) or within < 1:
        raise SpecValueError(
            _wrong("a whole number of seconds, at least 1", within), key=f"{key}.within"
        )
    alerts = []
    for spec, where in _specs(value["notify"], f"{key}.notify", None):
        _, cls, kwargs = _build(spec, where)
        if cls.async_notify is BaseNotifier.async_notify:
            raise SpecValueError(
                f"notifier {spec[KIND_KEY]!r} cannot notify of a deadline: the triggerer"
                " awaits deadline callbacks, and it has no async_notify",
                key=f"{where[0]}.{KIND_KEY}",
            )
        # The provider's own class: the triggerer imports it by its path and makes a
        # new instance for each missed deadline.
        callback = AsyncCallback(cls, kwargs=kwargs)
        alerts.append(DeadlineAlert(references[reference], timedelta(seconds=within), callback))
    return alerts


def _specs(value: Any, key: str, task: str | None) -> list[tuple[Any, tuple[str, str | None]]]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise SpecValueError(_wrong("a list of notifiers", value), task=task, key=key)
    return [(spec, (f"{key}[{index}]", task)) for index, spec in enumerate(value)]


def _build(spec: Any, where: tuple[str, str | None]) -> tuple[BaseNotifier, type, dict[str, Any]]:
    """The notifier for one spec, its kind's class, and the keyword arguments it was
    made with (plain, JSON-serializable: a deadline's callback stores them in Airflow's
    database)."""
    key, task = where
    if not isinstance(spec, Mapping):
        raise SpecValueError(_wrong("a dictionary naming a notifier", spec), task=task, key=key)
    name = spec.get(KIND_KEY)
    kind = _kind(name, f"{key}.{KIND_KEY}", task)
    given = {k: thaw(v) for k, v in spec.items() if k != KIND_KEY}
    kwargs = _checked(name, kind, given, where) if kind.args is not None else given
    kwargs.update(kind.fixed())
    if "context" in kwargs:
        raise SpecValueError("'context' is Airflow's own argument", task=task, key=f"{key}.context")
    cls = kind.load(name, task)
    try:
        notifier = rendered_per_call(cls)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecValueError(f"notifier {name!r} refuses it: {exc}", task=task, key=key) from None
    return notifier, cls, kwargs


def _kind(name: Any, key: str, task: str | None) -> Kind:
    kinds = {**KINDS, **_deployer_kinds()}
    if not isinstance(name, str) or name not in kinds:
        choices = ", ".join(sorted(kinds))
        raise SpecValueError(
            f"must name a notifier kind: one of {choices} (a dotted path is not accepted;"
            f" the deployer adds kinds with [alamode] {SETTING}), not {name!r}",
            task=task,
            key=key,
        )
    return kinds[name]


def _checked(name: str, kind: Kind, given: dict[str, Any], where: tuple[str, str | None]):
    """``given`` checked against a built-in kind's arguments, as the class's keywords."""
    key, task = where
    assert kind.args is not None
    for arg in given:
        if arg not in kind.args:
            allowed = ", ".join(sorted(kind.args))
            raise SpecValueError(
                f"notifier {name!r} takes {allowed}, not {arg!r}", task=task, key=f"{key}.{arg}"
            )
    kwargs = {}
    for arg, spec in kind.args.items():
        if arg not in given:
            if spec.required:
                raise SpecValueError(
                    f"notifier {name!r} needs {arg!r}", task=task, key=f"{key}.{arg}"
                )
            continue
        kwargs[spec.keyword] = _typed(given[arg], spec.kind, f"{key}.{arg}", task)
    return kwargs


def _typed(value: Any, kind: str, key: str, task: str | None) -> Any:
    if isinstance(value, str) and value:
        return value
    if kind == "strings" and isinstance(value, list) and value and all(map(_text, value)):
        return value
    wanted = "a non-empty string" + (" or a list of them" if kind == "strings" else "")
    raise SpecValueError(_wrong(wanted, value), task=task, key=key)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _keys(value: Any, key: str, required: tuple[str, ...]) -> None:
    """``value`` is a dictionary with exactly the keys ``required``."""
    if not isinstance(value, Mapping):
        raise SpecValueError(_wrong("a dictionary", value), key=key)
    for name in value:
        if name not in required:
            taken = ", ".join(required)
            raise SpecValueError(f"unknown key {name!r}; the keys are {taken}", key=f"{key}.{name}")
    for name in required:
        if name not in value:
            raise SpecValueError("is required", key=f"{key}.{name}")


def _deployer_kinds() -> dict[str, Kind]:
    """``[alamode] notifiers``: ``name=module.Class`` entries, separated by commas or
    new lines. A built-in name cannot be taken, so ``http`` and ``smtp`` mean the same
    in every deployment."""
    text = settings.get(SETTING) or ""
    kinds = {}
    for entry in text.replace("\n", ",").split(","):
        if not entry.strip():
            continue
        name, sep, target = (part.strip() for part in entry.partition("="))
        if not sep or not name or "." not in target or name in KINDS:
            raise AlamodeError(
                f"{entry.strip()!r} is not NAME=module.Class with a NAME other than"
                f" {', '.join(KINDS)}",
                key=f"[alamode] {SETTING}",
            )
        kinds[name] = Kind(target)
    return kinds


def _wrong(wanted: str, value: Any) -> str:
    return f"must be {wanted}, not {type(value).__name__} {value!r}"[:300]
