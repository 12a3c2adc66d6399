"""Turning ``*.alamode`` files under the dags folder into Airflow DAGs: one file's
through its own generated module (``dag_module``, ``dag_from``), or every file without
one through the folder loader ``dags/alamode_dags.py`` (``load_dags``).

One bad file must not hide the others. Airflow 3.3 records import errors per Python
file, so an error raised here would hide every DAG of the loader module; instead a bad
file becomes a small *broken* DAG (tag ``alamode-broken``) whose description and docs
carry the file name and the reason, and whose one task fails with that reason. It shows
in the DAG list, is searchable by tag, and cannot run by mistake.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from a_la_mode import AlamodeError, load
from alamode_airflow._compat import DAG, BaseOperator
from alamode_airflow.dag_module import has_module
from alamode_airflow.factory import build_dag

log = logging.getLogger(__name__)

SUFFIX = ".alamode"
BROKEN_TAG = "alamode-broken"


class BrokenFileOperator(BaseOperator):
    """The one task of a broken file's DAG: fails with the file's error."""

    ui_color = "#f5c6c6"

    def __init__(self, *, reason: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context) -> None:
        raise AlamodeError(self.reason)


def find_files(folder: str | Path) -> list[Path]:
    """Every ``*.alamode`` file under ``folder``, sorted, hidden files left out."""
    root = Path(folder)
    return sorted(
        p for p in root.rglob(f"*{SUFFIX}") if p.is_file() and not _hidden(p.relative_to(root))
    )


def load_dags(folder: str | Path, storage_root: str | None = None) -> dict[str, DAG]:
    """One DAG per file under ``folder`` that has no generated module of its own: a
    built DAG, or a broken one for a bad file."""
    dags: dict[str, DAG] = {}
    for path in find_files(folder):
        if has_module(path):
            continue
        dag = _built(path, str(path.relative_to(folder)), storage_root)
        if dag.dag_id in dags:
            dag = broken_dag(path, f"{path.name}: dag_id {dag.dag_id!r} is used by another file")
        dags[dag.dag_id] = dag
    return dags


def dag_from(module_file: str, encoded_name: str) -> DAG:
    """The DAG of the encoded file ``encoded_name`` beside ``module_file`` (its
    generated module's ``__file__``), or its broken DAG."""
    path = Path(module_file).parent / encoded_name
    if not path.exists():
        module = Path(module_file).name
        return broken_dag(
            path, f"{encoded_name} is gone: delete {module}, the DAG file `alamode encode` wrote"
        )
    return _built(path, encoded_name, None)


def _built(path: Path, shown: str, storage_root: str | None) -> DAG:
    """The DAG of ``path``; for a bad file, its broken DAG naming it as ``shown``."""
    try:
        return build_dag(load(path), path, storage_root)
    except AlamodeError as exc:
        exc.in_file(shown)
        log.error("alamode: %s", exc)
        return broken_dag(path, str(exc))


def broken_dag(path: Path, reason: str) -> DAG:
    dag_id = "alamode_broken__" + re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)
    dag = DAG(
        dag_id=dag_id,
        schedule=None,
        tags=[BROKEN_TAG],
        description=f"BROKEN: {reason}"[:1000],
        doc_md=f"### This a-la-mode file could not be loaded\n\n`{reason}`",
    )
    BrokenFileOperator(task_id="file_error", reason=reason, dag=dag)
    return dag


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
