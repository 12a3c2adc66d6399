"""One small Airflow DAG file per encoded file.

Airflow's DAG processor parses each Python file of the dags folder on its own: in its
own process, in parallel with the others, again when that file changes, with import
errors and the UI's Code tab per file. A single loader module for the whole folder
(``dags/alamode_dags.py``) gets none of that: every encoded file is rebuilt whenever the
folder is parsed, one after the other, and every DAG shows the loader as its code.

So ``alamode encode --dags-folder`` writes beside each ``NAME.alamode`` a module
``NAME.py`` of three statements that builds that one file's DAG. Its docstring lists
the tasks and output IDs (what the Code tab shows) and the file's sha256, so the module
changes, and is parsed again at once, exactly when its encoded file changes; the other
modules stay untouched. The folder loader leaves out every encoded file that has its
module, so each DAG is built once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from a_la_mode import AlamodeError, Pipeline
from a_la_mode.files import atomic_write

#: The call every generated module makes: how the folder loader recognises one.
CALL = "dag = dag_from(__file__, {name})"
#: Tasks listed in the docstring; a long pipeline is summarised after them.
LISTED = 200


def _call(encoded_name: str) -> str:
    # JSON's quoting is Python's double-quoted form: the module is what a formatter
    # would write, so linting a dags folder never rewrites it.
    return CALL.format(name=json.dumps(encoded_name))


def module_path(encoded: Path) -> Path:
    """Where the module of the encoded file ``encoded`` lives: beside it, ``NAME.py``."""
    return encoded.with_suffix(".py")


def has_module(encoded: Path) -> bool:
    """Whether ``encoded`` has its generated module (which then builds its DAG)."""
    module = module_path(encoded)
    try:
        return _call(encoded.name) in module.read_text(errors="replace")
    except OSError:
        return False


def module_text(pipeline: Pipeline, encoded_name: str, sha256: str) -> str:
    """The module's source for ``pipeline`` saved as ``encoded_name``, whose bytes
    have the digest ``sha256``."""
    width = max((len(task.name) for task in pipeline), default=0)
    lines = [
        f"    {task.name.ljust(width)}  {task.short_id}"
        + (f"  <- {', '.join(task.inputs)}" if task.inputs else "")
        for task in list(pipeline)[:LISTED]
    ]
    if len(pipeline) > LISTED:
        lines.append(f"    ... and {len(pipeline) - LISTED} more")
    listing = "\n".join(lines) or "    (no tasks)"
    return (
        f'"""Airflow DAG file of {encoded_name}, written by `alamode encode`: encoding\n'
        "the pipeline again rewrites it, so do not edit it.\n\n"
        f"{len(pipeline)} tasks; sha256 of the file:\n{sha256}\n\n"
        f'{listing}\n"""\n\n'
        "from alamode_airflow.loader import dag_from\n\n"
        f"{_call(encoded_name)}\n"
    )


#: The folder loader's own file name: a Dag of this name would replace it.
RESERVED = "alamode_dags"


def check_module(encoded: Path) -> None:
    """Raise AlamodeError unless the module of ``encoded`` may be written."""
    module = module_path(encoded)
    if encoded.stem == RESERVED:
        raise AlamodeError(f"{RESERVED!r} is the folder loader's name; give the Dag another")
    if module.exists() and not has_module(encoded):
        raise AlamodeError(
            f"{module} exists and was not written by `alamode encode`: not replaced"
            " (rename the Dag with meta dag_id, or move that file)"
        )


def write_module(encoded: Path, pipeline: Pipeline) -> Path:
    """Write (atomically) the module of ``encoded``; unchanged text is not rewritten,
    so the DAG processor has no reason to parse that file again. A ``NAME.py`` that is
    not a module written here (a hand-written DAG, a helper) is never replaced."""
    check_module(encoded)
    module = module_path(encoded)
    digest = hashlib.sha256(encoded.read_bytes()).hexdigest()
    text = module_text(pipeline, encoded.name, digest)
    try:
        if module.read_text() == text:
            return module
    except OSError:
        pass
    return atomic_write(module, text.encode())
