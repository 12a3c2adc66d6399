"""Which encoded file of a dags folder a dag_id belongs to, as Airflow's own DagBag
parses the folder: links, vanished files, read errors and the parse cache."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from a_la_mode import Dag, load
from alamode_airflow import loader
from alamode_airflow.dag_module import write_module


@pytest.fixture
def dags(tmp_path, monkeypatch) -> Path:
    """Airflow's dags folder, empty."""
    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    return folder


def encode(path: Path, dag_id: str, command: str = "true") -> Path:
    """An encoded file declaring ``dag_id`` and its generated module, as
    ``alamode encode --dags-folder`` writes them."""
    dag = Dag({"dag_id": dag_id})
    dag.task("t", {"command": command})
    write_module(dag.save(path), load(path))
    return path


def module_for(link: Path) -> Path:
    """The generated module of ``link`` (an encoded file's second name)."""
    return write_module(link, load(link))


def bag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder), load_op_links=False)


@pytest.mark.parametrize("how", ["hard link", "symlink"])
def test_a_link_to_an_encoded_file_in_another_folder_is_a_second_claimant(dags, how):
    # Its commands would run in its own folder: another DAG under the same dag_id.
    first = encode(dags / "x" / "a.alamode", "X", "./build.sh")
    (dags / "y").mkdir()
    second = dags / "y" / "b.alamode"
    if how == "hard link":
        os.link(first, second)
    else:
        second.symlink_to(Path("..", "x", "a.alamode"))
    module_for(second)
    found = bag(dags)
    assert found.import_errors == {}
    assert set(found.dags) == {"X", "alamode_broken__b"}
    assert found.dags["X"].task_dict["t"].cwd == str(dags / "x")
    assert "y/b.alamode: dag_id 'X' is already declared by x/a.alamode" in (
        found.dags["alamode_broken__b"].description
    )


def test_a_first_claimant_deleted_before_the_build_is_no_import_error(dags):
    encode(dags / "a.alamode", "shared")
    later = encode(dags / "b.alamode", "shared")
    claims = loader.first_claims(dags, loader._found(dags))
    (dags / "a.alamode").unlink()  # by another process, while b.alamode is built
    dag = loader._built(later, dags, None, claims, None)
    # Refused by the claims this parse read; the next parse finds b.alamode alone.
    assert dag.dag_id == "alamode_broken__b"
    found = bag(dags)
    assert found.import_errors == {}
    assert Path(found.dags["shared"].fileloc) == dags / "b.py"


def test_a_read_error_is_not_kept_as_declaring_nothing(dags, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__PARSE_CACHE", str(tmp_path / "parse-cache"))
    monkeypatch.setattr(loader.ClaimsCache, "RACY_S", 0.0)  # no margin: files kept at once
    encode(dags / "a.alamode", "shared", "echo A")
    encode(dags / "b.alamode", "shared", "echo B")
    peek, failed = loader.peek_meta, []

    def flaky(path):  # one EIO (an NFS soft mount's timeout) on a.alamode
        if Path(path).name == "a.alamode" and not failed:
            failed.append(path)
            raise loader.AlamodeError("a.alamode: cannot read file: Input/output error")
        return peek(path)

    monkeypatch.setattr(loader, "peek_meta", flaky)
    loader.dag_from(str(dags / "b.py"), "b.alamode")
    assert failed
    # Every later parse reads a.alamode again: its claim is seen.
    for _ in range(2):
        dag = loader.dag_from(str(dags / "b.py"), "b.alamode")
        assert dag.dag_id == "alamode_broken__b"
        assert "b.alamode: dag_id 'shared' is already declared by a.alamode" in dag.description


def test_a_file_rewritten_while_a_slow_read_of_it_lasts_is_read_again(dags, tmp_path, monkeypatch):
    """On a filesystem whose times have whole-minute ticks, a file rewritten in place
    (same size) during a read that lasts longer than ``RACY_S`` (a stalled network
    mount) keeps its times: its age is counted from before it was looked at, so what
    that read found is not kept."""
    monkeypatch.setenv("AIRFLOW__ALAMODE__PARSE_CACHE", str(tmp_path / "parse-cache"))
    monkeypatch.setattr(loader, "os", _CoarseTimes())
    monkeypatch.setattr(loader.ClaimsCache, "RACY_S", 2.0 * TICK)
    clock = _Clock()
    monkeypatch.setattr(loader, "time", clock)
    first = encode(dags / "a.alamode", "alpha1")
    encode(dags / "b.alamode", "bravo2")
    peek = loader.peek_meta

    def slow(path):
        meta = peek(path)
        if Path(path) == first:
            clock.ns += int(loader.ClaimsCache.RACY_S * 2e9)  # the read stalls...
            text = first.read_bytes().replace(b"alpha1", b"bravo2")
            with open(first, "r+b") as handle:  # ...while the file is rewritten
                handle.write(text)
        return meta

    monkeypatch.setattr(loader, "peek_meta", slow)
    assert loader.dag_from(str(dags / "b.py"), "b.alamode").dag_id == "bravo2"
    monkeypatch.setattr(loader, "peek_meta", peek)
    assert loader.dag_from(str(dags / "b.py"), "b.alamode").dag_id == "alamode_broken__b"


TICK = 60  # seconds: the coarse clock's


class _CoarseTimes:
    """``os`` as the loader sees it on a filesystem with coarse times."""

    def __getattr__(self, name: str):
        return getattr(os, name)

    def stat(self, path, *args, **kwargs):
        real = os.stat(path, *args, **kwargs)
        tick = TICK * 1_000_000_000
        return _Stat(real, *(t // tick * tick for t in (real.st_mtime_ns, real.st_ctime_ns)))


class _Stat:
    def __init__(self, real: os.stat_result, mtime_ns: int, ctime_ns: int) -> None:
        self._real, self.st_mtime_ns, self.st_ctime_ns = real, mtime_ns, ctime_ns

    def __getattr__(self, name: str):
        return getattr(self._real, name)


class _Clock:
    """This host's clock, moved on by hand."""

    def __init__(self) -> None:
        import time

        self.ns = time.time_ns()

    def time_ns(self) -> int:
        return self.ns


@pytest.mark.parametrize("how", ["another owner", "writable by others", "symlink", "hard link"])
def test_a_claims_file_others_could_have_written_is_not_trusted(dags, tmp_path, monkeypatch, how):
    cache = tmp_path / "parse-cache"
    monkeypatch.setenv("AIRFLOW__ALAMODE__PARSE_CACHE", str(cache))
    monkeypatch.setattr(loader.ClaimsCache, "RACY_S", 0.0)  # no margin: files kept at once
    encode(dags / "a.alamode", "shared", "echo A")
    encode(dags / "b.alamode", "shared", "echo B")
    assert loader.dag_from(str(dags / "b.py"), "b.alamode").dag_id == "alamode_broken__b"
    # The folder stays this user's alone; its one file says a.alamode declares another.
    (kept,) = cache.iterdir()
    claims = json.loads(kept.read_text())
    (entry,) = claims["files"].values()
    entry[4] = "something_else"
    forged = json.dumps(claims)
    if how == "another owner":
        kept.write_text(forged)
        os.chown(kept, 1234, 1234)
    elif how == "writable by others":
        kept.write_text(forged)
        kept.chmod(0o666)
    elif how == "symlink":
        (tmp_path / "forged.json").write_text(forged)
        kept.unlink()
        kept.symlink_to(tmp_path / "forged.json")
    else:
        kept.write_text(forged)
        os.link(kept, tmp_path / "second-name.json")
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    dag = loader.dag_from(str(dags / "b.py"), "b.alamode")
    assert dag.dag_id == "alamode_broken__b"
    assert "b.alamode: dag_id 'shared' is already declared by a.alamode" in dag.description


def test_a_symlinked_subfolder_is_compared_with_the_rest_of_the_dags_folder(dags, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "team"
    elsewhere.mkdir(parents=True)
    (dags / "team").symlink_to(elsewhere)  # Airflow follows it
    encode(dags / "a.alamode", "shared", "echo A")
    encode(elsewhere / "b.alamode", "shared", "echo B")
    found = bag(dags)
    assert found.import_errors == {}
    assert set(found.dags) == {"shared", "alamode_broken__b"}
    assert Path(found.dags["shared"].fileloc) == dags / "a.py"
    assert "team/b.alamode: dag_id 'shared' is already declared by a.alamode" in (
        found.dags["alamode_broken__b"].description
    )


def test_a_dags_folder_reached_through_a_link_is_still_one_folder(dags, tmp_path):
    # The DagBag is given another spelling of [core] dags_folder.
    alias = tmp_path / "alias"
    alias.symlink_to(dags)
    encode(dags / "a.alamode", "shared", "echo A")
    encode(dags / "team" / "b.alamode", "shared", "echo B")
    found = bag(alias)
    assert set(found.dags) == {"shared", "alamode_broken__b"}
    assert Path(found.dags["shared"].fileloc) == alias / "a.py"


def test_the_files_of_a_dag_bundle_outside_the_dags_folder_are_compared(
    dags, tmp_path, monkeypatch
):
    """A bundle (a git checkout under the Airflow home) is parsed as a folder of its
    own, with its root given to the DagBag: its subfolders see each other."""
    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setattr(sys, "path", list(sys.path))  # the bag adds the bundle to it
    bundle = tmp_path / "dag_bundles" / "repo"
    encode(bundle / "team1" / "x.alamode", "shared", "echo A")
    encode(bundle / "team2" / "x.alamode", "shared", "echo B")
    found = BundleDagBag(bundle, bundle_path=bundle, bundle_name="repo", load_op_links=False)
    assert found.import_errors == {}
    assert set(found.dags) == {"shared", "alamode_broken__x"}
    assert Path(found.dags["shared"].fileloc) == bundle / "team1" / "x.py"
    assert "team2/x.alamode: dag_id 'shared' is already declared by team1/x.alamode" in (
        found.dags["alamode_broken__x"].description
    )
