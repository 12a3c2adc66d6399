"""a-la-mode: describe pure data pipelines whose every output has a content ID.

Change a task, or anything upstream of it, and its output ID changes; nothing else
does. Engines read the encoded file and run only the work they have no success record
for. See SPEC.md in the documentation for the rules every engine follows.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Eager: the function ``diff`` shares its name with its module, which would shadow it.
from a_la_mode.diff import ChangeKind, DiffResult, KeyChange, TaskChange, diff
from a_la_mode.errors import (
    AlamodeError,
    CycleError,
    DefinitionError,
    DependencyError,
    FileFormatError,
    FileTooLargeError,
    IntegrityError,
    PipelineImportError,
    SpecValueError,
    TaskNameError,
)
from a_la_mode.load import load
from a_la_mode.pipeline import Pipeline, PipelineTask

if TYPE_CHECKING:
    from a_la_mode.dsl import Dag, Task

#: Imported when first used: an engine that only loads files (every DAG parse) never
#: pays for the DSL.
_LAZY = {"Dag": "a_la_mode.dsl", "Task": "a_la_mode.dsl"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'a_la_mode' has no attribute {name!r}")


__all__ = [
    "AlamodeError",
    "ChangeKind",
    "CycleError",
    "Dag",
    "DefinitionError",
    "DependencyError",
    "DiffResult",
    "FileFormatError",
    "FileTooLargeError",
    "IntegrityError",
    "KeyChange",
    "Pipeline",
    "PipelineImportError",
    "PipelineTask",
    "SpecValueError",
    "Task",
    "TaskChange",
    "TaskNameError",
    "diff",
    "load",
    "pp",
]


def pp(value: object) -> None:
    """Pretty-print, as the seed README's examples do.

    >>> pp({"meta": {"schedule": "@daily"}})
    {'meta': {'schedule': '@daily'}}
    """
    from pprint import pprint

    pprint(value, indent=2)
