"""Which pipeline a DAG shown in the UI was built from, as the api-server can know it.

The api-server parses no DAG files: what it has is the serialized DAG in the database
(what every other page of the UI shows). That names the DAG's tasks and, in each task's
outlet Asset ``x-alamode://outputs/<id>``, its output ID; but not its spec, which
``explain`` compares with earlier records, nor which tasks are partitioned. So the
pipeline is read from its encoded file, found from the serialized DAG: the factory's
docs name it ("Built by alamode-airflow from `NAME.alamode`"), and it lies beside the
DAG's Python file (its generated module) or under the dags folder (the folder loader;
the first file in path order that declares the dag_id, as the loader decides). Only
files under the api-server's ``[core] dags_folder`` are read, whatever ``fileloc`` says.
Every Airflow service of a deployment mounts the dags folder (docker-compose.yaml), the
api-server included.

The file is then checked against the serialized DAG: when their output IDs differ, the
file changed since the DAG processor last parsed it, and the page says so (the next
parse makes the file's version the one that runs). A loaded file is kept while its
size and modification time stay the same, so a page shown again does not load it again.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a_la_mode import Pipeline, load
from alamode_airflow.links import ASSET_SCHEME
from alamode_airflow.operators import PLAN_TASK

BUILT_FROM = re.compile(r"Built by alamode-airflow from `([^`/\\]+\.alamode)`")
OUTLET_PREFIX = f"{ASSET_SCHEME}://outputs/"


class NotOurs(LookupError):
    """The DAG was not built by alamode-airflow, or its file cannot be read here."""


@dataclass(frozen=True)
class DagSource:
    dag_id: str
    pipeline: Pipeline
    path: Path
    #: Set when the file's output IDs differ from those of the DAG Airflow parsed.
    drift: str = ""


def encoded_name(dag: Any) -> str:
    """The encoded file's name the factory wrote in the DAG's docs."""
    match = BUILT_FROM.search(getattr(dag, "doc_md", None) or "")
    if match is None:
        raise NotOurs(f"DAG {dag.dag_id!r} was not built by alamode-airflow")
    return match.group(1)


#: (dag_id, fileloc) -> the encoded file found for it and its (mtime, size) then: a page
#: shown again stats that file instead of walking the dags folder.
_FOUND: dict[tuple[str, str], tuple[Path, tuple[int, int]]] = {}
_FOUND_MAX = 4096


def find_file(dag: Any) -> Path:
    """The encoded file ``dag`` (a serialized DAG) was built from, under the dags folder
    and nowhere else: ``fileloc`` comes from the database, so a path it leads to (or a
    link under it leads to) outside the folder is refused, never read or walked."""
    key = (dag.dag_id, str(dag.fileloc))
    cached = _FOUND.get(key)
    if cached is not None and _signature(cached[0]) == cached[1]:
        return cached[0]
    path = _search(dag)
    if len(_FOUND) >= _FOUND_MAX:
        _FOUND.clear()
    _FOUND[key] = (path, _signature(path))
    return path


def dags_folder() -> Path:
    from alamode_airflow._compat import conf

    configured = conf.get("core", "dags_folder", fallback="") or ""
    if not configured:
        raise NotOurs("[core] dags_folder is not set on this api-server")
    return Path(os.path.realpath(configured))


def _search(dag: Any) -> Path:
    from alamode_airflow.loader import declared_dag_id, find_files

    name, root = encoded_name(dag), dags_folder()
    module = Path(os.path.realpath(Path(dag.fileloc).parent))
    if not module.is_relative_to(root):
        raise NotOurs(f"DAG {dag.dag_id!r} was not parsed from the dags folder {root}")
    beside = _inside(module / name, root)
    if beside is not None and declared_dag_id(beside) == dag.dag_id:
        return beside
    for found in find_files(root):
        path = _inside(found, root)
        if path is not None and path.name == name and declared_dag_id(path) == dag.dag_id:
            return path
    raise NotOurs(
        f"the encoded file {name} of DAG {dag.dag_id!r} is not readable on this api-server "
        f"(looked in {root}); mount the dags folder here as on the other services"
    )


def _inside(path: Path, root: Path) -> Path | None:
    """``path`` resolved, if it is a file under ``root``."""
    real = Path(os.path.realpath(path))
    return real if real.is_relative_to(root) and real.is_file() else None


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def dag_source(dag: Any) -> DagSource:
    """The pipeline of ``dag`` (a serialized DAG), checked against it."""
    path = find_file(dag)
    stat = path.stat()
    pipeline = _load(str(path), stat.st_mtime_ns, stat.st_size)
    return DagSource(dag.dag_id, pipeline, path, _drift(dag, pipeline))


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int, size: int) -> Pipeline:
    """``load`` of a file, kept while the file stays the same (the key says so)."""
    return load(path)


def serialized_outputs(dag: Any) -> dict[str, str]:
    """task -> output ID, from the tasks' outlet Assets (the factory gives one each)."""
    outputs = {}
    for task in dag.tasks:
        for outlet in getattr(task, "outlets", ()) or ():
            uri = getattr(outlet, "uri", "")
            if uri.startswith(OUTLET_PREFIX):
                outputs[task.task_id] = uri[len(OUTLET_PREFIX) :]
    return outputs


def _drift(dag: Any, pipeline: Pipeline) -> str:
    parsed = serialized_outputs(dag)
    ours = {task.name: task.output for task in pipeline}
    if parsed == ours:
        return ""
    changed = sorted(name for name in set(parsed) | set(ours) if parsed.get(name) != ours.get(name))
    shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
    return (
        f"the encoded file changed since Airflow last parsed this DAG ({len(changed)} tasks"
        f" differ: {shown}); shown is the file, which the next parse makes the DAG"
    )


def task_names(dag: Any) -> list[str]:
    """The DAG's tasks that produce outputs (all but the plan task)."""
    return [task_id for task_id in dag.task_ids if task_id != PLAN_TASK]
