"""Execution settings: how Airflow runs a task, never what the task computes.

A spec is *what* is computed, so every spec key is part of the output ID. How Airflow
runs the work (which pool it waits in, which Celery queue takes it, how often it is
retried, who is told when it fails) is operation: it must be changeable at any time
without one output being computed again. It therefore lives in the file's meta, which
the file digest covers and no output ID does:

- ``meta.defaults``: settings for every task of the file (Airflow's ``default_args``);
- ``meta.tasks.<task name>``: settings for one task, overriding the defaults.

Each setting is mapped onto Airflow's own operator argument of the same name, after a
check as strict as Airflow's own (a wrong type, an unknown key, an unknown task name,
a pod override Kubernetes would not read), so the file becomes its broken DAG naming
the task and the key instead of an operator that quietly runs otherwise.

Two spec keys predate this module, ``retries`` and ``timeout``; they are part of
existing output IDs and keep their meaning (``retries``: the task's retries; ``timeout``:
seconds after which the command is killed). A setting in meta wins over them, so an
existing file can change either without changing an ID (``spec_overrides``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from a_la_mode import SpecValueError
from a_la_mode.values import thaw

#: The meta keys this module reads.
DEFAULTS, TASKS = "defaults", "tasks"
#: Meta keys from before ``defaults`` existed: file-wide task defaults too.
LEGACY_DEFAULTS = ("retries", "owner")
WEIGHT_RULES = ("downstream", "upstream", "absolute")
#: Airflow stores priority weights in a 32-bit column.
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
OWNER = "alamode"

Check = Callable[[Any, str, "str | None"], Any]


def _refuse(reason: str, value: Any, key: str, task: str | None) -> SpecValueError:
    return SpecValueError(f"{reason}, not {value!r}", task=task, key=key)


def text(value: Any, key: str, task: str | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _refuse("must be a non-empty string", value, key, task)
    return value


def _integer(value: Any, key: str, task: str | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _refuse("must be an integer", value, key, task)
    return value


def at_least(least: int) -> Check:
    def check(value: Any, key: str, task: str | None) -> int:
        if _integer(value, key, task) < least:
            raise _refuse(f"must be at least {least}", value, key, task)
        return value

    return check


def seconds(least: int) -> Check:
    """An integer number of seconds, as a timedelta (what Airflow's arguments take)."""
    count = at_least(least)
    return lambda value, key, task: datetime.timedelta(seconds=count(value, key, task))


def _priority(value: Any, key: str, task: str | None) -> int:
    low, high = PRIORITY_RANGE
    if not low <= _integer(value, key, task) <= high:
        raise _refuse(f"must be between {low} and {high}", value, key, task)
    return value


def _weight_rule(value: Any, key: str, task: str | None) -> str:
    if value not in WEIGHT_RULES:
        raise _refuse(f"must be one of {', '.join(WEIGHT_RULES)}", value, key, task)
    return value


def _email(value: Any, key: str, task: str | None) -> str | list[str]:
    if isinstance(value, tuple | list):
        return [text(item, f"{key}[{i}]", task) for i, item in enumerate(value)]
    return text(value, key, task)


#: The executor_config keys an executor reads (the KubernetesExecutor's); any other key
#: would be passed on and read by nobody, an override silently not applied.
EXECUTOR_CONFIG_KEYS = ("pod_override", "pod_template_file")


def _executor_config(value: Any, key: str, task: str | None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _refuse("must be a dictionary", value, key, task)
    config = thaw(value)
    for name in config:
        if name not in EXECUTOR_CONFIG_KEYS:
            raise SpecValueError(
                f"is not read by any executor; known: {', '.join(EXECUTOR_CONFIG_KEYS)}",
                task=task,
                key=f"{key}.{name}",
            )
    if "pod_template_file" in config:
        text(config["pod_template_file"], f"{key}.pod_template_file", task)
    if "pod_override" in config:
        from alamode_airflow.pods import pod_override

        config["pod_override"] = pod_override(config["pod_override"], f"{key}.pod_override", task)
    return config


def _notifiers(value: Any, key: str, task: str | None) -> list[Any]:
    from alamode_airflow.notify import notifiers

    return notifiers(value, key=key, task=task)


#: Task setting -> its check, which returns the value Airflow's argument takes.
TASK_SETTINGS: Mapping[str, Check] = {
    "pool": text,
    "pool_slots": at_least(1),
    "queue": text,
    "priority_weight": _priority,
    "weight_rule": _weight_rule,
    "retries": at_least(0),
    "retry_delay": seconds(0),
    # A multiplier (0: a constant delay, 2: doubling); bencode has no fractions.
    "retry_exponential_backoff": at_least(0),
    "max_retry_delay": seconds(0),
    "execution_timeout": seconds(1),
    "max_active_tis_per_dag": at_least(1),
    "executor_config": _executor_config,
    "owner": text,
    "email": _email,
    "doc_md": text,
    "on_failure": _notifiers,
}
#: Where a setting's value goes when it is not the operator argument of the same name.
ARGUMENT = {"on_failure": "on_failure_callback"}
#: Airflow 3 deprecates an operator's ``email``: the addresses are told of a failure by
#: Airflow's SMTP notifier instead, as one more ``on_failure`` notifier.
EMAIL_NOTIFIER = "smtp"


@dataclass(frozen=True)
class TaskSettings:
    """One task's checked settings: Airflow argument name -> value; where each came
    from (``meta.tasks.blur.pool``); and the command timeout a spec ``timeout`` still
    sets when no meta ``execution_timeout`` of the task replaces it."""

    arguments: Mapping[str, Any]
    sources: Mapping[str, str]
    command_timeout: int | None = None


def _section(value: Any, key: str, task: str | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _refuse("must be a dictionary", value, key, task)
    return value


def _checked(settings: Mapping[str, Any], where: str, task: str | None) -> dict[str, tuple]:
    """``settings`` checked one by one, as name -> (Airflow value, key path); an unknown
    name is refused (a typo must not be a setting silently not applied)."""
    checked = {}
    for name, value in settings.items():
        key = f"{where}.{name}"
        if name not in TASK_SETTINGS:
            raise SpecValueError(
                f"is not an execution setting; known: {', '.join(sorted(TASK_SETTINGS))}",
                task=task,
                key=key,
            )
        checked[name] = (TASK_SETTINGS[name](value, key, task), key)
    return checked


def file_defaults(meta: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """The file-wide settings: ``meta.defaults``, and the older top-level meta
    ``retries`` and ``owner`` (refused when ``defaults`` sets the same key)."""
    defaults = _section(meta.get(DEFAULTS, {}), f"meta.{DEFAULTS}")
    legacy = {name: meta[name] for name in LEGACY_DEFAULTS if name in meta}
    for name in legacy:
        if name in defaults:
            raise SpecValueError(
                f"is set twice: keep meta.{DEFAULTS}.{name} and remove meta.{name}",
                key=f"meta.{name}",
            )
    checked = {"owner": (OWNER, "default")}
    checked.update(_checked(legacy, "meta", None))
    checked.update(_checked(defaults, f"meta.{DEFAULTS}", None))
    return checked


def spec_settings(name: str, retries: int | None, timeout: int | None) -> dict[str, tuple]:
    """What a spec's ``retries`` and ``timeout`` still set (already checked by
    ``spec.task_spec``): they sit between the file's defaults and meta.tasks.<name>."""
    found: dict[str, tuple] = {}
    if retries is not None:
        found["retries"] = (retries, f"tasks.{name}.retries")
    if timeout is not None:
        found[COMMAND_TIMEOUT] = (timeout, f"tasks.{name}.timeout")
    return found


#: A spec's ``timeout`` keeps its old meaning: the seconds after which the command
#: (not the whole attempt) is killed. It is not an Airflow argument.
COMMAND_TIMEOUT = "command timeout"


def _email_by_notifier(merged: dict[str, tuple], task: str | None) -> None:
    """Replace ``email`` in ``merged`` by an SMTP notifier among the ``on_failure`` ones.
    Each of the two is merged on its own first, so a task's ``email: []`` silences the
    file's default addresses and its ``on_failure: []`` the file's other notifiers."""
    if "email" not in merged:
        return
    from alamode_airflow.notify import notifiers

    to, key = merged.pop("email")
    if not to:
        return
    told = notifiers([{"notifier": EMAIL_NOTIFIER, "to": to}], key=key, task=task)
    others, where = merged.get("on_failure", ([], key))
    merged["on_failure"] = ([*others, *told], where)


def task_settings(
    meta: Mapping[str, Any], names: Any, specs: Mapping[str, Mapping[str, tuple]]
) -> dict[str, TaskSettings]:
    """Every task's settings, name -> TaskSettings: the file's defaults, then what the
    task's spec still sets (``spec_settings``, in ``specs``), then meta.tasks.<name>."""
    defaults = file_defaults(meta)
    per_task = _section(meta.get(TASKS, {}), f"meta.{TASKS}")
    unknown = sorted(set(per_task) - set(names))
    if unknown:
        raise SpecValueError(
            f"names no task of this pipeline: {', '.join(map(repr, unknown))}", key="meta.tasks"
        )
    result = {}
    for name in names:
        where = f"meta.{TASKS}.{name}"
        own = _checked(_section(per_task.get(name, {}), where, name), where, name)
        spec = dict(specs.get(name, {}))
        # A spec's timeout kills the command; the task's own execution_timeout replaces
        # it, and the file's default execution_timeout still limits the whole attempt.
        command = spec.pop(COMMAND_TIMEOUT, None)
        if "execution_timeout" in own:
            command = None
        result[name] = _settled({**defaults, **spec, **own}, command, name)
    return result


#: What the plan task does not take from the file's defaults: the tasks' docs, and
#: what sizes a task's resources (a pod asking for a GPU, several pool slots), which a
#: lookup of every output does not need and must not wait for.
NOT_FOR_PLAN = ("doc_md", "executor_config", "pool_slots")


def plan_settings(meta: Mapping[str, Any]) -> TaskSettings:
    """The engine's own plan task runs as the file's defaults say (a deployment whose
    workers listen only to the file's queue must run it too), but ``NOT_FOR_PLAN``."""
    defaults = file_defaults(meta)
    for name in NOT_FOR_PLAN:
        defaults.pop(name, None)
    return _settled(defaults, None, None)


def _settled(
    merged: dict[str, tuple], command_timeout: tuple | None, task: str | None
) -> TaskSettings:
    """``merged`` (setting -> (value, source)) as the arguments Airflow takes."""
    _email_by_notifier(merged, task)
    return TaskSettings(
        arguments={ARGUMENT.get(k, k): value for k, (value, _) in merged.items()},
        sources={k: source for k, (_, source) in merged.items()},
        command_timeout=command_timeout[0] if command_timeout else None,
    )
