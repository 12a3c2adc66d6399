"""The alamode command, driven as a user would: files in, exit status and output out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alamode_airflow.cli import main

EXAMPLE = Path(__file__).parents[2] / "examples" / "collage" / "pipeline.py"
COLLAGE = "566a13d45eeebdefc50de118f5031278b20171ce76deb51791a4f084668e6d16"

TWO_DAGS = """
from a_la_mode import Dag
first = Dag({"dag_id": "first"})
first.task("a", {"command": "echo a"})
second = Dag({})
second.task("b", {"command": "echo b"})
alias = second
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def encode_example(workdir: Path, sha: str | None = None) -> Path:
    source = EXAMPLE.read_text()
    if sha:
        source = source.replace('"sha": "6f09d"', f'"sha": "{sha}"')
    pipeline = workdir / f"pipeline_{sha or 'seed'}.py"
    pipeline.write_text(source)
    target = workdir / f"{sha or 'seed'}.alamode"
    assert main(["encode", str(pipeline), "-o", str(target)]) == 0
    return target


def test_encode_reproduces_the_seed_ids(workdir, capsys):
    target = encode_example(workdir)
    assert "wrote collage (4 tasks)" in capsys.readouterr().out
    assert main(["show", str(target), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in shown["tasks"]] == [
        "download_images",
        "blur",
        "edge_enhance",
        "collage",
    ]
    assert shown["tasks"][-1]["output"] == COLLAGE
    assert shown["meta"] == {
        "schedule": "@daily",
        "dag_id": "collage",
        "cwd": "../examples/collage",
    }


def test_show_table_has_short_ids_and_deps(workdir, capsys):
    target = encode_example(workdir)
    capsys.readouterr()
    assert main(["show", str(target)]) == 0
    out = capsys.readouterr().out
    assert COLLAGE[:12] in out
    assert "download_images (6075b3951568)" in out


def test_encode_to_dags_folder_names_files_by_dag_id_or_variable(workdir, capsys):
    (workdir / "two.py").write_text(TWO_DAGS)
    assert main(["encode", "two.py", "--dags-folder", "dags"]) == 0
    assert sorted(p.name for p in (workdir / "dags").iterdir()) == [
        "first.alamode",
        "first.py",  # its Airflow DAG file (see test_dag_module.py)
        "second.alamode",
        "second.py",
    ]
    assert main(["encode", "two.py", "-o", "one.alamode"]) == 2
    assert "defines 2 Dags (first, second); use --dags-folder" in capsys.readouterr().err


def test_encode_default_writes_to_the_current_folder(workdir):
    (workdir / "two.py").write_text(TWO_DAGS)
    assert main(["encode", "two.py"]) == 0
    assert (workdir / "first.alamode").is_file()


def test_encode_replaces_a_file_atomically_leaving_no_temporaries(workdir):
    first = encode_example(workdir)
    before = first.stat().st_ino
    pipeline = workdir / "pipeline_seed.py"
    assert main(["encode", str(pipeline), "-o", str(first)]) == 0
    assert first.stat().st_ino != before  # replaced by rename, not rewritten in place
    assert sorted(p.name for p in workdir.iterdir()) == ["pipeline_seed.py", "seed.alamode"]
    assert oct(first.stat().st_mode & 0o777) == "0o644"


def test_diff_exit_status_and_report(workdir, capsys):
    old, new = encode_example(workdir), encode_example(workdir, "qwetr3")
    capsys.readouterr()
    assert main(["diff", str(old), str(old)]) == 0
    assert "no differences" in capsys.readouterr().out
    assert main(["diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "~ blur 82695e5805a9 -> 4df7200d1f83 (spec)" in out
    assert "spec sha: '6f09d' -> 'qwetr3'" in out
    assert "~ collage 566a13d45eee -> 25adad192471 (upstream)" in out
    assert "upstream blur changed" in out
    assert main(["diff", str(old), str(new), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in data["changed"]] == ["blur", "collage"]
    assert data["equal"] is False


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_graph_draws_names_and_short_ids(workdir, suffix):
    target = encode_example(workdir)
    picture = workdir / f"collage{suffix}"
    assert main(["graph", str(target), "-o", str(picture)]) == 0
    data = picture.read_bytes()
    if suffix == ".svg":
        text = data.decode()
        assert "<svg" in text
        assert "edge_enhance" in text or "edge" in text
    else:
        assert data.startswith(b"\x89PNG")
    assert main(["graph", str(target), "-o", "collage.gif"]) == 3


def test_exit_codes_per_error_class(workdir, capsys):
    good = encode_example(workdir)
    tampered = workdir / "tampered.alamode"
    tampered.write_bytes(good.read_bytes().replace(b"python collage.py", b"python collag3.py"))
    (workdir / "junk.alamode").write_bytes(b"not bencode")
    (workdir / "cycle.py").write_text(
        "from a_la_mode import Dag\nd = Dag()\na = d.task('a', {})\nb = d.task('b', {})\n"
        "a >> b >> a\n"
    )
    (workdir / "broken.py").write_text("raise RuntimeError('boom')\n")
    (workdir / "empty.py").write_text("x = 1\n")
    cases = [
        (["show", "tampered.alamode"], 6, "task 'collage': output ID does not match"),
        (["show", "junk.alamode"], 5, "junk.alamode: not a bencoded file"),
        (["encode", "cycle.py"], 4, "cycle.py: dependency cycle: a -> b -> a"),
        (["encode", "broken.py"], 7, "broken.py: importing the pipeline failed: RuntimeError"),
        (["encode", "empty.py"], 7, "empty.py: defines no Dag"),
        (["show"], 2, "Missing argument"),
    ]
    for argv, status, message in cases:
        capsys.readouterr()
        assert main(argv) == status, argv
        assert message in " ".join(capsys.readouterr().err.split()), argv


def test_encode_refuses_what_airflow_would_refuse_and_keeps_the_old_file(workdir, capsys):
    target = encode_example(workdir)
    good = target.read_bytes()
    (workdir / "typo.py").write_text(
        "from a_la_mode import Dag\nd = Dag({'dag_id': 'collage'})\n"
        "d.task('blur', {'command': 'true'}, retires=3)\n"
    )
    capsys.readouterr()
    assert main(["encode", "typo.py", "-o", str(target)]) == 4
    said = " ".join(capsys.readouterr().err.split())
    assert "typo.py: task 'blur': key 'meta.tasks.blur.retires': is not an execution" in said
    assert target.read_bytes() == good


def test_console_script_runs_in_a_real_process(workdir):
    target = encode_example(workdir)
    script = Path(sys.executable).parent / "alamode"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [str(script), "show", str(target)], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "566a13d45eee" in done.stdout
    failed = subprocess.run(
        [str(script), "show", "missing.alamode"], capture_output=True, text=True, check=False
    )
    assert failed.returncode == 5
    assert "missing.alamode: cannot read file" in failed.stderr
    assert "Traceback" not in failed.stderr


@pytest.fixture
def one_task(workdir, monkeypatch) -> tuple[Path, str]:
    """An encoded one-task pipeline and its task's output ID (and a console wide
    enough that error messages with long paths stay on one line)."""
    monkeypatch.setenv("COLUMNS", "1000")
    from a_la_mode import Dag, load

    dag = Dag({"dag_id": "one"})
    dag.task("a", {"command": "true"})
    path = dag.save(workdir / "one.alamode")
    return path, load(path)["a"].output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "no such store: the folder does not exist"),
        (lambda root: root.write_text("x"), "not a store: a file, not a folder"),
        (lambda root: (root / "photos").mkdir(parents=True), "holds photos but no objects/"),
    ],
    ids=["missing", "file", "other-folder"],
)
def test_store_that_is_not_a_store_is_refused(one_task, workdir, capsys, make, message):
    root = workdir / "stroe"
    make(root)
    for argv in (["status", str(one_task[0])], ["lineage", one_task[1]]):
        assert main([*argv, "--store", str(root)]) == 10
        err = capsys.readouterr().err
        assert "stroe" in err
        assert message in err


def test_empty_folder_is_a_new_store(one_task, workdir, capsys):
    (workdir / "new").mkdir()
    assert main(["status", str(one_task[0]), "--store", "new", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "missing"


def test_store_io_error_names_the_path_with_its_own_status(one_task, workdir, capsys):
    # A record that cannot be read as a file: the OS refuses, the command must say where.
    record = workdir / "store" / "objects" / one_task[1] / "0" / "record.json"
    record.mkdir(parents=True)
    (record.parent / "data").mkdir()
    for argv in (["status", str(one_task[0])], ["lineage", one_task[1], "--verify"]):
        assert main([*argv, "--store", "store"]) == 9
        err = capsys.readouterr().err
        assert "record.json: I/O error: Is a directory" in err
        assert "Traceback" not in err
