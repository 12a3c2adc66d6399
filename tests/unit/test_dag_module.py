"""One generated Airflow DAG file per encoded file, parsed by Airflow's own DagBag."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alamode_airflow.cli import main

REPO = Path(__file__).parents[2]
PIPELINES = """
from a_la_mode import Dag

first = Dag({"dag_id": "first"})
first.task("a", {"command": "echo a"}) >> first.task("b", {"command": "echo b"})
second = Dag({"dag_id": "second"})
second.task("c", {"command": "echo COMMAND"})
"""


@pytest.fixture(autouse=True)
def parse_cache(tmp_path, monkeypatch) -> Path:
    """Where the parses of each test keep the dag_ids files declare: not the home."""
    folder = tmp_path / "parse-cache"
    monkeypatch.setenv("AIRFLOW__ALAMODE__PARSE_CACHE", str(folder))
    return folder


@pytest.fixture
def dags(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipes.py").write_text(PIPELINES)
    folder = tmp_path / "dags"
    assert main(["encode", "pipes.py", "--dags-folder", str(folder)]) == 0
    # The folder loader too, as a deployment that had it keeps it.
    shutil.copy(REPO / "dags" / "alamode_dags.py", folder)
    return folder


def bag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder), load_op_links=False)


def test_each_encoded_file_gets_its_own_dag_file(dags):
    assert sorted(p.name for p in dags.iterdir()) == [
        "alamode_dags.py",
        "first.alamode",
        "first.py",
        "second.alamode",
        "second.py",
    ]
    found = bag(dags)
    assert found.import_errors == {}
    # Built once each, by its own module: the folder loader leaves them alone.
    assert {dag_id: Path(dag.fileloc).name for dag_id, dag in found.dags.items()} == {
        "first": "first.py",
        "second": "second.py",
    }
    # What the Code tab shows: the tasks and their output IDs.
    text = (dags / "first.py").read_text()
    assert "\n    a  " in text
    assert "<- a\n" in text  # b reads a


def test_a_module_alone_builds_only_its_own_dag(dags, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("second.alamode", "second.py"):
        shutil.copy(dags / name, alone)
    assert list(bag(alone).dags) == ["second"]


def test_changing_one_pipeline_rewrites_only_its_own_module(dags, tmp_path):
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in dags.glob("*.py")}
    pipes = tmp_path / "pipes.py"
    pipes.write_text(PIPELINES.replace("echo COMMAND", "echo CHANGED"))
    assert main(["encode", "pipes.py", "--dags-folder", str(dags)]) == 0
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in dags.glob("*.py")}
    assert after["first.py"] == before["first.py"]  # not even touched
    assert after["second.py"][0] != before["second.py"][0]
    assert after["alamode_dags.py"] == before["alamode_dags.py"]


def test_a_broken_file_breaks_only_its_own_dag(dags):
    (dags / "second.alamode").write_bytes(b"d4:meta")  # truncated
    found = bag(dags)
    assert "first" in found.dags
    broken = found.dags["alamode_broken__second"]
    assert Path(broken.fileloc).name == "second.py"
    assert broken.description.startswith("BROKEN: ")
    assert f"{dags / 'second.alamode'}: not a bencoded file" in broken.description


def test_encoded_file_without_module_is_still_built_by_the_folder_loader(dags):
    (dags / "first.py").unlink()
    found = bag(dags)
    assert Path(found.dags["first"].fileloc).name == "alamode_dags.py"
    assert Path(found.dags["second"].fileloc).name == "second.py"


def test_the_repository_demo_module_matches_its_file():
    from a_la_mode import load
    from alamode_airflow.dag_module import module_path, module_text

    encoded = REPO / "dags" / "collage.alamode"
    import hashlib

    digest = hashlib.sha256(encoded.read_bytes()).hexdigest()
    assert module_path(encoded).read_text() == module_text(load(encoded), encoded.name, digest)


def test_a_hand_written_dag_file_of_the_same_name_is_never_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipes.py").write_text(PIPELINES)
    folder = tmp_path / "dags"
    folder.mkdir()
    mine = folder / "second.py"
    mine.write_text("# my own DAG file\n")
    assert main(["encode", "pipes.py", "--dags-folder", str(folder)]) == 3
    said = " ".join(capsys.readouterr().err.split())
    assert f"{mine} exists and was not written by `alamode encode`: not replaced" in said
    assert mine.read_text() == "# my own DAG file\n"
    assert not (folder / "second.alamode").exists()  # nothing half done for it


def test_a_module_whose_encoded_file_is_gone_says_what_to_delete(dags):
    (dags / "second.alamode").unlink()
    broken = bag(dags).dags["alamode_broken__second"]
    assert "second.alamode is gone: delete second.py" in broken.description


def test_encode_can_skip_the_engine_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd.py").write_text(
        "from a_la_mode import Dag\nd = Dag({'dag_id': 'odd'})\n"
        "d.task('a', {'command': 'true'}, retires=1)\n"
    )
    assert main(["encode", "odd.py", "-o", "odd.alamode"]) == 4
    assert main(["encode", "odd.py", "-o", "odd.alamode", "--no-check"]) == 0
    assert (tmp_path / "odd.alamode").exists()


def test_two_encoded_files_of_one_dag_id_the_later_is_broken_naming_the_earlier(
    dags, tmp_path, monkeypatch
):
    # Files in subfolders are compared across the whole dags folder Airflow reads.
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    # The same pipelines encoded again into a subfolder: "first" and "second" twice.
    assert main(["encode", str(tmp_path / "pipes.py"), "--dags-folder", str(dags / "team")]) == 0
    # And a copy of first.alamode under another name, built by the folder loader.
    shutil.copy(dags / "first.alamode", dags / "zz_copy.alamode")
    found = bag(dags)
    assert found.import_errors == {}
    assert Path(found.dags["first"].fileloc) == dags / "first.py"  # first in path order
    team = found.dags["alamode_broken__first"]
    assert Path(team.fileloc) == dags / "team" / "first.py"
    assert (
        "team/first.alamode: dag_id 'first' is already declared by first.alamode; "
        "give one of them another meta dag_id"
    ) in team.description
    copy = found.dags["alamode_broken__zz_copy"]
    assert Path(copy.fileloc).name == "alamode_dags.py"
    assert "zz_copy.alamode: dag_id 'first' is already declared by first.alamode" in (
        copy.description
    )


def test_a_dag_id_after_a_long_meta_is_still_seen(tmp_path):
    from a_la_mode import Dag
    from a_la_mode.load import META_HEAD
    from alamode_airflow.loader import load_dags

    # Meta keys sort: "dag_id" comes after a "cwd" longer than the first read.
    for name in ("a", "b"):
        dag = Dag({"dag_id": "same", "cwd": "x" * META_HEAD * 2})
        dag.task("t", {"command": "true"})
        dag.save(tmp_path / f"{name}.alamode")
    (tmp_path / "c.alamode").write_bytes(b"d4:metad6:dag_id4:same")  # cut short: no claim
    dags = load_dags(tmp_path)
    assert set(dags) == {"same", "alamode_broken__b", "alamode_broken__c"}
    assert "b.alamode: dag_id 'same' is already declared by a.alamode" in (
        dags["alamode_broken__b"].description
    )


def test_a_parse_reads_again_only_the_encoded_files_changed_since_the_last(
    tmp_path, monkeypatch, parse_cache
):
    from a_la_mode import Dag, load
    from alamode_airflow import loader
    from alamode_airflow.dag_module import write_module

    folder = tmp_path / "many"
    for i in range(6):
        dag = Dag({"dag_id": f"pipe_{i}"})
        dag.task("t", {"command": f"echo {i}"})
        write_module(dag.save(folder / f"p{i}.alamode"), load(folder / f"p{i}.alamode"))
    read = []
    peek = loader.peek_meta
    monkeypatch.setattr(loader, "peek_meta", lambda path: read.append(path) or peek(path))
    # Files here are written just before each parse, and this clock is fine-grained:
    # no margin is needed for a change to show in a file's times.
    monkeypatch.setattr(loader.ClaimsCache, "RACY_S", 0.0)

    def last():
        read.clear()
        return bag(folder / "p5.py").dags

    assert list(last()) == ["pipe_5"]
    assert len(read) == 5  # every file before it, once
    # Parsed again, as the DAG processor does every few seconds: nothing is read.
    assert list(last()) == ["pipe_5"]
    assert read == []
    # One earlier file now declares the same dag_id: it alone is read, and it is first.
    dag = Dag({"dag_id": "pipe_5"})
    dag.task("t", {"command": "echo again"})
    dag.save(folder / "p2.alamode")
    broken = last()["alamode_broken__p5"]
    assert [Path(path).name for path in read] == ["p2.alamode"]
    assert "p5.alamode: dag_id 'pipe_5' is already declared by p2.alamode" in broken.description
    # A cache that cannot be read is no cache: every file is read, and it is written anew.
    for damage in ("{not json", "[" * 100_000):  # deep nesting: RecursionError
        for kept in parse_cache.iterdir():
            kept.write_text(damage)
        assert list(last()) == ["alamode_broken__p5"]
        assert len(read) == 5
        assert list(last()) == ["alamode_broken__p5"]
        assert read == []
    # A folder others may write to is not trusted (root too): every file is read.
    parse_cache.chmod(0o777)
    assert list(last()) == ["alamode_broken__p5"]
    assert len(read) == 5
    assert list(last()) == ["alamode_broken__p5"]
    assert len(read) == 5


def test_every_airflow_process_starts_with_the_engine_imported():
    """The ``airflow.policy`` entry point: importing Airflow imports the modules that
    build a DAG, so the DAG processor's parsers and the tasks' processes, forked from
    Airflow's, do not import them each."""
    code = "import sys, airflow; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {"alamode_airflow.loader", "alamode_airflow.factory"} <= set(done.stdout.split())


def test_a_file_rewritten_within_a_tick_of_a_coarse_clock_is_read_again(
    tmp_path, monkeypatch, parse_cache
):
    """On a filesystem with coarse times (whole seconds on FAT, SMB, some NFS; a
    minute here, so the test cannot cross a tick), a file rewritten in place, at the
    same size, within the tick it was read in keeps its times: what it declared then
    is not kept (``RACY_S`` is longer than the tick), so the next parse reads it
    again."""
    from a_la_mode import Dag, load
    from alamode_airflow import loader
    from alamode_airflow.dag_module import write_module

    real_stat = os.stat

    def coarse(path, *args, **kwargs):
        got = real_stat(path, *args, **kwargs)
        fields = list(got)
        fields[7:10] = [int(t) // TICK * TICK for t in fields[7:10]]  # atime, mtime, ctime
        stat = os.stat_result(fields)
        return _Seconds(stat, got)

    monkeypatch.setattr(loader.os, "stat", coarse)
    monkeypatch.setattr(loader.ClaimsCache, "RACY_S", 2.0 * TICK)
    folder = tmp_path / "coarse"
    for name, dag_id in (("a", "alpha1"), ("b", "bravo2")):
        dag = Dag({"dag_id": dag_id})
        dag.task("t", {"command": "echo"})
        write_module(dag.save(folder / f"{name}.alamode"), load(folder / f"{name}.alamode"))
    assert list(bag(folder / "b.py").dags) == ["bravo2"]
    # a.alamode rewritten in place, same size, now declaring b's dag_id.
    text = (folder / "a.alamode").read_bytes().replace(b"alpha1", b"bravo2")
    with open(folder / "a.alamode", "r+b") as handle:
        handle.write(text)
    assert list(bag(folder / "b.py").dags) == ["alamode_broken__b"]


TICK = 60  # seconds: the coarse clock's


class _Seconds:
    """A stat result whose ``st_*_ns`` times are whole ticks too."""

    def __init__(self, stat: os.stat_result, real: os.stat_result) -> None:
        self._stat, self._real = stat, real

    def __getattr__(self, name: str):
        if name in ("st_mtime_ns", "st_ctime_ns", "st_atime_ns"):
            return int(getattr(self._real, name[:-3])) // TICK * TICK * 1_000_000_000
        return getattr(self._stat, name)
