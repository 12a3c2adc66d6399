"""Turning ``*.alamode`` files under the dags folder into Airflow DAGs: one file's
through its own generated module (``dag_module``, ``dag_from``), or every file without
one through the folder loader ``dags/alamode_dags.py`` (``load_dags``).

A dag_id belongs to one encoded file of the dags folder (Airflow's ``[core]
dags_folder``): its meta ``dag_id``, else its file name. Each file is parsed on its
own, so each looks at the metas of the files before it (a short read of each file's
start, ``a_la_mode.load.peek_meta``): when several files declare one dag_id, the first
in path order (``find_files``) keeps it and every later one becomes a broken DAG
naming the first, instead of the two DAGs silently replacing each other. Files that
``.airflowignore`` leaves out are counted too.

One bad file must not hide the others. Airflow 3.3 records import errors per Python
file, so an error raised here would hide every DAG of the loader module; instead a bad
file becomes a small *broken* DAG (tag ``alamode-broken``) whose description and docs
carry the file name and the reason, and whose one task fails with that reason. It shows
in the DAG list, is searchable by tag, and cannot run by mistake.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from a_la_mode import AlamodeError, load
from a_la_mode.load import peek_meta
from alamode_airflow._compat import DAG, BaseOperator, conf
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
    """Every ``*.alamode`` file under ``folder``, hidden files and folders left out, in
    path order: a folder's files by name, then its subfolders' by name."""
    found: list[Path] = []
    _walk(os.fspath(folder), found)
    return found


def _walk(folder: str, found: list[Path]) -> None:
    # os.scandir, not Path.rglob: every generated module's parse walks the folder.
    files, subfolders = [], []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.name.endswith(SUFFIX) and entry.is_file():
                    files.append(entry.path)
                elif entry.is_dir():
                    subfolders.append(entry.path)
    except (FileNotFoundError, NotADirectoryError):
        return  # no folder (or gone meanwhile): nothing in it
    found += map(Path, sorted(files))
    for subfolder in sorted(subfolders):
        _walk(subfolder, found)


def load_dags(folder: str | Path, storage_root: str | None = None) -> dict[str, DAG]:
    """One DAG per file under ``folder`` that has no generated module of its own: a
    built DAG, or a broken one for a bad file."""
    root = Path(folder)
    files = find_files(root)
    claims = _first_claims(files)
    dags: dict[str, DAG] = {}
    for path in files:
        if has_module(path):
            continue
        dag = _built(path, root, storage_root, claims)
        if dag.dag_id in dags:
            # A broken DAG's id repeated: two bad files of the same name.
            dag = broken_dag(path, f"{path.name}: dag_id {dag.dag_id!r} is used by another file")
        dags[dag.dag_id] = dag
    return dags


def dag_from(module_file: str, encoded_name: str) -> DAG:
    """The DAG of the encoded file ``encoded_name`` beside ``module_file`` (its
    generated module's ``__file__``), or its broken DAG."""
    # Real paths, so that this file is recognised among those the folder's walk lists.
    path = Path(os.path.realpath(Path(module_file).parent), encoded_name)
    if not path.exists():
        module = Path(module_file).name
        return broken_dag(
            path, f"{encoded_name} is gone: delete {module}, the DAG file `alamode encode` wrote"
        )
    root = dags_root(path.parent)
    return _built(path, root, None, _first_claims(find_files(root), until=path))


def dags_root(folder: Path) -> Path:
    """The dags folder ``folder`` is in: Airflow's ``[core] dags_folder`` when it holds
    ``folder``, else ``folder`` itself (a DagBag of another folder, a test)."""
    configured = Path(os.path.realpath(conf.get("core", "dags_folder", fallback="") or folder))
    return configured if folder.is_relative_to(configured) else folder


def declared_dag_id(path: Path) -> str | None:
    """The dag_id ``path`` declares (meta ``dag_id``, else its name), unverified;
    None for a file whose meta cannot be read, which becomes a broken DAG anyway."""
    try:
        dag_id = peek_meta(path).get("dag_id", path.stem)
    except AlamodeError:
        return None
    return dag_id if isinstance(dag_id, str) else None


def _first_claims(files: list[Path], until: Path | None = None) -> dict[str, Path]:
    """dag_id -> the first of ``files`` (sorted) that declares it; only the files
    before ``until`` are read when it is given (what one file's parse needs)."""
    first: dict[str, Path] = {}
    for path in files:
        if path == until:
            break
        dag_id = declared_dag_id(path)
        if dag_id is not None:
            first.setdefault(dag_id, path)
    return first


def _built(path: Path, root: Path, storage_root: str | None, claims: dict[str, Path]) -> DAG:
    """The DAG of ``path``; for a bad file, or one whose dag_id an earlier file
    declares, its broken DAG naming it by its path under ``root``."""
    shown = path.relative_to(root).as_posix()
    try:
        dag = build_dag(load(path), path, storage_root)
    except AlamodeError as exc:
        exc.in_file(shown)
        log.error("alamode: %s", exc)
        return broken_dag(path, str(exc))
    first = claims.get(dag.dag_id, path)
    if first == path or first.samefile(path):
        return dag
    reason = (
        f"{shown}: dag_id {dag.dag_id!r} is already declared by "
        f"{first.relative_to(root).as_posix()}; give one of them another meta dag_id"
    )
    log.error("alamode: %s", reason)
    return broken_dag(path, reason)


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
