"""The spec keys the Airflow engine reads, checked by name when a file is loaded.

A spec may hold any bencodable value, and every key is part of the output ID; but a
value the engine reads must have the type the engine needs. A value of the wrong type
is refused here, naming the task and the key, instead of being silently ignored at run
time (a ``"timeout": "30"`` that ran with no timeout at all). The loader turns the
error into the file's broken DAG.

=========  ==========================================================================
key        accepted
=========  ==========================================================================
command    a non-empty string (required)
env        a dictionary: names (non-empty, no ``=``) to strings or integers
cwd        a string (a folder, relative to meta ``cwd``)
image      a string
sha        a string
timeout    an integer number of seconds, at least 1
retries    an integer, at least 0
partition  ``"interval"`` (checked by ``a_la_mode.partitions``)
=========  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from a_la_mode import PipelineTask, SpecValueError


@dataclass(frozen=True)
class TaskSpec:
    """What the engine reads from one task's spec, typed."""

    command: str
    env: Mapping[str, str]
    cwd: str | None
    image: str | None
    sha: str | None
    timeout_s: int | None
    retries: int | None


def task_spec(task: PipelineTask) -> TaskSpec:
    """The engine's reading of ``task``'s spec; SpecValueError names the bad key."""
    spec = task.spec

    def refuse(key: str, reason: str) -> SpecValueError:
        return SpecValueError(f"{reason}, not {spec[key]!r}", task=task.name, key=key)

    command = spec.get("command")
    if not isinstance(command, str) or not command.strip():
        raise SpecValueError(
            "has no 'command' (a non-empty string) to run", task=task.name, key="command"
        )
    text = {}
    for key in ("cwd", "image", "sha"):
        if key in spec and not isinstance(spec[key], str):
            raise refuse(key, "must be a string")
        text[key] = spec.get(key)
    number = {}
    for key, least in (("timeout", 1), ("retries", 0)):
        value = spec.get(key)
        # bool is an int in Python; the file format has no booleans, but be explicit.
        if key in spec and (not isinstance(value, int) or isinstance(value, bool)):
            raise refuse(key, "must be an integer")
        if value is not None and value < least:
            raise refuse(key, f"must be at least {least}")
        number[key] = value
    return TaskSpec(
        command=command,
        env=_env(task),
        cwd=text["cwd"],
        image=text["image"],
        sha=text["sha"],
        timeout_s=number["timeout"],
        retries=number["retries"],
    )


def _env(task: PipelineTask) -> dict[str, str]:
    env = task.spec.get("env", {})
    if not isinstance(env, Mapping):
        raise SpecValueError(f"'env' must be a dictionary, not {env!r}", task=task.name, key="env")
    result = {}
    for name, value in env.items():
        where = f"env.{name}"
        if not name or "=" in name or "\0" in name:
            raise SpecValueError("is not an environment variable name", task=task.name, key=where)
        # Integers are written in decimal; anything else has no one obvious text form.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or "\0" in value:
            raise SpecValueError(
                f"must be a string or an integer, not {value!r}", task=task.name, key=where
            )
        result[name] = value
    return result
