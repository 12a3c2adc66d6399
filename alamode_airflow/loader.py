"""Turning ``*.alamode`` files under the dags folder into Airflow DAGs: one file's
through its own generated module (``dag_module``, ``dag_from``), or every file without
one through the folder loader ``dags/alamode_dags.py`` (``load_dags``).

A dag_id belongs to one encoded file of the dags folder (the DAG bundle Airflow
parses; by default ``[core] dags_folder``): its meta ``dag_id``, else its file name.
Each file is parsed on its own, so each looks at the dag_ids the files before it
declare: when several files declare one dag_id, the first in path order
(``find_files``, through symlinked folders as Airflow walks them) keeps it and every
later one becomes a broken DAG naming the first, instead of the two DAGs silently
replacing each other. Files that ``.airflowignore`` leaves out are counted too. A
second name of an encoded file (a link) in another place is another file: its
commands would run in its own folder.

A file's declared dag_id is in its meta, at its start (``a_la_mode.load.peek_meta``),
but reading every earlier file on every parse costs each parse the size of the folder,
and the folder's parses its square. So what each file declares is kept between parses
(``ClaimsCache``), by the file's size, times and inode: a parse reads again only the
files that changed since. What is kept decides only which file is first to a dag_id;
every file's content is verified when it is loaded, whatever is kept.

One bad file must not hide the others. Airflow 3.3 records import errors per Python
file, so an error raised here would hide every DAG of the loader module; instead a bad
file becomes a small *broken* DAG (tag ``alamode-broken``) whose description and docs
carry the file name and the reason, and whose one task fails with that reason. It shows
in the DAG list, is searchable by tag, and cannot run by mistake.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from stat import S_ISREG

from a_la_mode import AlamodeError, load
from a_la_mode.load import peek_meta
from alamode_airflow import settings
from alamode_airflow._compat import DAG, BaseOperator, conf, parsing_for_task
from alamode_airflow.dag_module import has_module
from alamode_airflow.factory import build_dag
from alamode_airflow.meta import report_once

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
    return [Path(path) for path in _found(folder)]


def _found(folder: str | Path) -> list[str]:
    """``find_files`` as strings: every parse lists the folder, and Path objects cost."""
    found: list[str] = []
    _walk(os.fspath(folder), found)
    return found


def _walk(folder: str, found: list[str]) -> None:
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
    found += sorted(files)
    for subfolder in sorted(subfolders):
        _walk(subfolder, found)


def load_dags(folder: str | Path, storage_root: str | None = None) -> dict[str, DAG]:
    """One DAG per file under ``folder`` that has no generated module of its own: a
    built DAG, or a broken one for a bad file."""
    root = Path(folder)
    files = _found(root)
    claims = first_claims(root, files)
    running = running_task()
    # A task's process needs the file of its own DAG only.
    only = claims.get(running[0]) if running else None
    dags: dict[str, DAG] = {}
    for file in files:
        path = Path(file)
        # Compared as listed: Path("./x") is "x".
        if has_module(path) or only not in (None, file):
            continue
        dag = _built(path, root, storage_root, claims, running)
        if dag.dag_id in dags:
            # A broken DAG's id repeated: two bad files of the same name.
            dag = broken_dag(path, f"{path.name}: dag_id {dag.dag_id!r} is used by another file")
        dags[dag.dag_id] = dag
    return dags


def dag_from(module_file: str, encoded_name: str) -> DAG:
    """The DAG of the encoded file ``encoded_name`` beside ``module_file`` (its
    generated module's ``__file__``), or its broken DAG."""
    # Spelt as Airflow lists it, through symlinked folders: so the folder's walk lists it.
    folder = Path(os.path.abspath(os.path.dirname(module_file)))
    path = folder / encoded_name
    if not path.exists():
        module = Path(module_file).name
        return broken_dag(
            path, f"{encoded_name} is gone: delete {module}, the DAG file `alamode encode` wrote"
        )
    root = dags_root(folder)
    if not folder.is_relative_to(root):  # in it once links are resolved: spelt so too
        path = Path(os.path.realpath(folder), encoded_name)
    claims = first_claims(root, _found(root), until=str(path))
    return _built(path, root, None, claims, running_task())


def dags_root(folder: Path) -> Path:
    """The dags folder the absolute ``folder`` is in: the DAG bundle that Airflow's
    DagBag is parsing, when it holds ``folder``; else Airflow's ``[core] dags_folder``
    when it holds ``folder`` as spelt, or (resolved) once both are resolved; else
    ``folder`` itself (a DagBag of another folder, a test)."""
    bundle = _parsed_bundle()
    if bundle is not None and folder.is_relative_to(bundle):
        return bundle
    setting = conf.get("core", "dags_folder", fallback="")
    if not setting:
        return folder
    configured = Path(os.path.abspath(os.path.expanduser(setting)))
    if folder.is_relative_to(configured):
        return configured
    real = Path(os.path.realpath(configured))
    return real if Path(os.path.realpath(folder)).is_relative_to(real) else folder


def _parsed_bundle() -> Path | None:
    """The root of the DAG bundle whose file is being imported: the ``bundle_path`` of
    the DagBag up the stack (the DAG processor's and ``airflow dags reserialize``'s
    have one), or None. Every file of a bundle has to be compared with the bundle's
    others, and a bundle need not be under ``[core] dags_folder`` (a git checkout)."""
    dagbag = sys.modules.get("airflow.dag_processing.dagbag")
    code = getattr(getattr(getattr(dagbag, "DagBag", None), "process_file", None), "__code__", None)
    frame = sys._getframe(1) if code is not None else None
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    bundle = getattr(frame.f_locals.get("self"), "bundle_path", None) if frame else None
    return Path(os.path.abspath(bundle)) if bundle else None


def declared_dag_id(path: Path) -> str | None:
    """The dag_id ``path`` declares (meta ``dag_id``, else its name), unverified;
    None for a file whose meta cannot be read, which becomes a broken DAG anyway."""
    try:
        dag_id = peek_meta(path).get("dag_id", path.stem)
    except AlamodeError:
        return None
    return dag_id if isinstance(dag_id, str) else None


def first_claims(root: Path, files: list[str], until: str | None = None) -> dict[str, str]:
    """dag_id -> the first of ``files`` (the folder ``root``'s, in path order) that
    declares it; only the files before ``until`` are asked when it is given (what one
    file's parse needs). Unchanged files answer from the cache."""
    cache = ClaimsCache.configured(root)
    first: dict[str, str] = {}
    for path in files:
        if path == until:
            break
        dag_id = cache.declared(path)
        if dag_id is not None and dag_id not in first:
            first[dag_id] = path
    cache.save(files)
    return first


class ClaimsCache:
    """The dag_id each file of a dags folder declares, kept in a small JSON file per
    folder under ``[alamode] parse_cache`` (default ``$AIRFLOW_HOME/alamode-parse``;
    ``none`` keeps nothing), by path: (size, mtime_ns, ctime_ns, inode, dag_id).

    A file written again gets a new inode (``alamode encode`` replaces files) or new
    times, so it is read again. A cache that cannot be read or written, or that
    another user could have written (folder or file), is no cache: every file is
    read, as without one. Parsers running at once may each rewrite it
    (through a rename: never half a file); the last wins, and what another one
    learnt is learnt again at the next parse."""

    FORMAT = 1
    #: A file changed less than this before the parse began may change again within
    #: the same tick of a coarse clock (1-2 s on FAT, SMB, some NFS and bind mounts)
    #: without its times changing: its entry is not kept (git's "racy" rule). The
    #: file's times are the file server's clock, the parse's start this host's: a
    #: server whose clock lags by more than this less a tick defeats the rule.
    RACY_S = 2.0

    def __init__(self, path: Path | None, root: Path) -> None:
        self.path, self.root = path, root
        self.known = self._read() if path is not None and _trusted(path.parent) else {}
        self.changed = False
        # Before any file is looked at: a file changed while this parse reads it (a
        # read that stalls on a network mount) is younger than RACY_S, never older.
        self.now_ns = time.time_ns()

    @classmethod
    def configured(cls, root: Path) -> ClaimsCache:
        folder = settings.get("parse_cache") or os.path.join(
            settings.airflow_home(), "alamode-parse"
        )
        if folder.lower() == "none":
            return cls(None, root)
        name = hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
        return cls(Path(folder, f"claims-{name}.json"), root)

    def declared(self, path: str) -> str | None:
        """The dag_id the file ``path`` declares (see ``declared_dag_id``)."""
        try:
            stat = os.stat(path)
        except OSError:
            return None  # gone meanwhile: it claims nothing
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        kept = self.known.get(path)
        if kept is not None and kept[:4] == stamp:
            return kept[4]
        # Stamped before it is read: a change while it is read shows next time.
        dag_id = declared_dag_id(Path(path))
        changed = max(stat.st_mtime_ns, stat.st_ctime_ns)
        # No dag_id is never kept: the read may have failed once (EIO, a timeout);
        # a file that truly declares none is a broken DAG, rare and quick to read.
        if dag_id is not None and self.now_ns - changed > self.RACY_S * 1e9:
            self.known[path] = [*stamp, dag_id]
        else:
            self.known.pop(path, None)
        self.changed = True
        return dag_id

    def save(self, files: list[str]) -> None:
        """Keep what was learnt (for the files still there) if anything was."""
        if self.path is None or not self.changed:
            return
        listed = set(files)
        known = {path: kept for path, kept in self.known.items() if path in listed}
        text = json.dumps({"format": self.FORMAT, "root": str(self.root), "files": known})
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not _trusted(self.path.parent):
                return
            fd, tmp = tempfile.mkstemp(prefix=".claims.", dir=self.path.parent)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("alamode: dag_id claims not kept in %s: %s", self.path, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def _read(self) -> dict[str, list]:
        try:
            kept = json.loads(_own_bytes(self.path))
        except Exception:  # any damage (deep nesting too), or not ours: no cache
            return {}
        if (
            not isinstance(kept, dict)
            or kept.get("format") != self.FORMAT
            or kept.get("root") != str(self.root)
            or not isinstance(kept.get("files"), dict)
        ):
            return {}
        return {
            path: entry
            for path, entry in kept["files"].items()
            if isinstance(entry, list) and len(entry) == 5 and isinstance(entry[4], str)
        }


def _trusted(folder: Path) -> bool:
    """Whether the cache's folder is this user's alone (or not there yet: it is made
    so). Anyone else who could write there could make a file look first to a dag_id."""
    try:
        stat = folder.stat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.st_uid == os.geteuid() and not stat.st_mode & 0o022


def _own_bytes(path: Path) -> bytes:
    """The content of the file ``path`` if this user alone could have written it: a
    regular file (not a link to one) of this user's, with no other name, that no one
    else may write to. Raises OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        stat = os.fstat(fd)
        if not (
            S_ISREG(stat.st_mode)
            and stat.st_uid == os.geteuid()
            and not stat.st_mode & 0o022
            and stat.st_nlink == 1
        ):
            raise PermissionError(f"{path} may have been written by another user")
        with open(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def _built(
    path: Path,
    root: Path,
    storage_root: str | None,
    claims: dict[str, str],
    running: tuple[str, str] | None,
) -> DAG:
    """The DAG of ``path`` (its ``running`` task alone: ``running_task``, asked once
    per parse); for a bad file, or one whose dag_id an earlier file declares, its
    broken DAG naming it by its path under ``root``."""
    shown = path.relative_to(root).as_posix()
    try:
        dag = build_dag(load(path), path, storage_root, running=running)
    except AlamodeError as exc:
        exc.in_file(shown)
        log.error("alamode: %s", exc)
        return broken_dag(path, str(exc))
    first = Path(claims.get(dag.dag_id, path))
    if first == path or _located(first) == _located(path):
        return dag
    reason = (
        f"{shown}: dag_id {dag.dag_id!r} is already declared by "
        f"{first.relative_to(root).as_posix()}; give one of them another meta dag_id"
    )
    log.error("alamode: %s", reason)
    return broken_dag(path, reason)


#: ``[alamode] task_process_dag``: what a task's process builds of its DAG.
TASK_PROCESS_DAG = ("task", "whole")


def running_task() -> tuple[str, str] | None:
    """The (dag_id, task_id) this process parses DAG files to run: in a task's own
    process (``_compat.parsing_for_task``), unless ``[alamode] task_process_dag`` is
    ``whole`` (for cluster policies, OpenLineage task edges or command templates that
    read the DAG's shape); None for every other parse (the DAG processor, the CLI,
    the programs a task runs)."""
    choice = settings.get("task_process_dag") or "task"
    if choice not in TASK_PROCESS_DAG:
        said = f"must be one of {', '.join(TASK_PROCESS_DAG)}, not {choice!r}: the whole DAG"
        report_once("airflow.cfg", "[alamode] task_process_dag", said)
        return None
    return parsing_for_task() if choice == "task" else None


def _located(path: Path) -> Path:
    """Where ``path`` is: its folder's real path and its own name. Not the file it
    leads to: a link to an encoded file in another folder builds another DAG (its
    commands run in its own folder), so it is another claimant of the dag_id."""
    return Path(os.path.realpath(path.parent), path.name)


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
