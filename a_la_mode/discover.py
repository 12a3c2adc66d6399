"""Finding the Dags a user's pipeline file defines, and the file name each gets."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path

from a_la_mode.dsl import Dag
from a_la_mode.errors import AlamodeError, PipelineImportError

_FILE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def find_dags(path: str | Path) -> dict[str, Dag]:
    """Import the Python file at ``path`` and return its Dags by name: meta ``dag_id``
    if set, else the variable name. A Dag bound to two names counts once."""
    path = Path(path)
    module = _import(path)
    found: dict[str, Dag] = {}
    seen: set[int] = set()
    for variable, value in vars(module).items():
        if not isinstance(value, Dag) or id(value) in seen:
            continue
        seen.add(id(value))
        name = value.meta.get("dag_id", variable) if isinstance(value.meta, dict) else variable
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            raise PipelineImportError(f"dag_id {name!r} cannot name a file", file=str(path))
        if name in found:
            raise PipelineImportError(f"two Dags are named {name!r}", file=str(path))
        found[name] = value
    if not found:
        raise PipelineImportError("defines no Dag at module level", file=str(path))
    return found


def _import(path: Path):
    if not path.is_file():
        raise PipelineImportError("no such file", file=str(path))
    # A unique module name per file, so two pipelines called pipeline.py do not clash.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_alamode_pipeline_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except AlamodeError as exc:
        exc.in_file(str(path))
        raise
    except Exception as exc:
        # Any error in user code becomes one of ours, naming the file.
        raise PipelineImportError(
            f"importing the pipeline failed: {type(exc).__name__}: {exc}", file=str(path)
        ) from exc
    finally:
        sys.path.remove(str(path.parent))
    return module
