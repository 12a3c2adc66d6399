"""a-la-mode: describe pure data pipelines whose every output has a content ID.

Change a task, or anything upstream of it, and its output ID changes; nothing else
does. Engines read the encoded file and run only the work they have no success record
for. See SPEC.md in the documentation for the rules every engine follows.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

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
    from a_la_mode.diff import ChangeKind, DiffResult, KeyChange, TaskChange, diff
    from a_la_mode.dsl import Dag, Task

#: Imported when first used: an engine that only loads files (every DAG parse) never
#: pays for the DSL or for comparing pipelines.
_LAZY = {
    "Dag": "a_la_mode.dsl",
    "Task": "a_la_mode.dsl",
    **{
        name: "a_la_mode.diff"
        for name in ("ChangeKind", "DiffResult", "KeyChange", "TaskChange", "diff")
    },
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'a_la_mode' has no attribute {name!r}")


class _Package(types.ModuleType):
    """``a_la_mode.diff`` is the function: importing the module of the same name (which
    sets the package's attribute to the module) leaves it so."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "diff" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
