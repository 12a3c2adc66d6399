"""Running a command: environment, streaming, failures and timeouts, in real processes."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alamode_airflow import supervise
from alamode_airflow.runner import Command, CommandFailed, InputModified, Invocation, env_name


def call(tmp_path, command, timeout=None, inputs=None) -> Invocation:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return Invocation(
        command=command,
        cwd=str(tmp_path),
        output=str(out),
        output_id="ab" * 32,
        task="edge-enhance",
        inputs=inputs or {"download.v2": "/data/in"},
        env={"GREETING": "hi"},
        timeout=timeout,
    )


def test_locations_reach_the_command(tmp_path):
    lines = []
    Command(call(tmp_path, "env | grep -E '^(ALAMODE|GREETING)' | sort")).run(lines.append)
    env = dict(line.split("=", 1) for line in lines)
    assert env["ALAMODE_OUTPUT"] == str(tmp_path / "out")
    assert env["ALAMODE_OUTPUT_ID"] == "ab" * 32
    assert env["ALAMODE_TASK"] == "edge-enhance"
    assert env["ALAMODE_INPUT_DOWNLOAD_V2"] == "/data/in"
    assert json.loads(env["ALAMODE_INPUTS"]) == {"download.v2": "/data/in"}
    assert env["GREETING"] == "hi"


def test_runs_in_cwd_and_streams_stdout_and_stderr(tmp_path):
    lines = []
    Command(call(tmp_path, "pwd; echo oops >&2")).run(lines.append)
    assert lines == [str(tmp_path), "oops"]


def test_non_zero_exit_is_a_failure_naming_the_task(tmp_path):
    with pytest.raises(CommandFailed, match="task 'edge-enhance': command exited with status 3"):
        Command(call(tmp_path, "exit 3")).run(lambda line: None)


def test_timeout_kills_every_process_of_the_command(tmp_path):
    marker, detached = tmp_path / "child-survived", tmp_path / "detached-survived"
    # setsid: a process that left the command's process group is killed too.
    command = f"(sleep 3; touch {marker}) & setsid sh -c 'sleep 3; touch {detached}' & sleep 30"
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=r"\(timed out after 1s\)"):
        Command(call(tmp_path, command, timeout=1)).run(lambda line: None)
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists()
    assert not detached.exists()


def test_env_names():
    assert env_name("blur") == "ALAMODE_INPUT_BLUR"
    assert env_name("a.b-c") == "ALAMODE_INPUT_A_B_C"


def test_nothing_but_command_reaches_the_shell(tmp_path):
    marker = tmp_path / "pwned"
    crafted = f"$(touch {marker}); `touch {marker}`; touch {marker}"
    run = Invocation(
        command='printf "%s\\n" "$CRAFTED" "$ALAMODE_INPUT_X"',
        cwd=str(tmp_path),
        output=str(tmp_path),
        output_id="ab" * 32,
        task="t",
        inputs={"x": crafted},
        env={"CRAFTED": crafted},
    )
    lines = []
    Command(run).run(lines.append)
    assert lines == [crafted, crafted]
    assert not marker.exists()


# --- A killed task leaves nothing running -------------------------------------------

TASK = """
import sys
from alamode_airflow.runner import Command, Invocation
call = Invocation(command=sys.argv[1], cwd=sys.argv[2], output=sys.argv[2], output_id="ab" * 32,
                                task="t", inputs={}, env={})
Command(call).run(lambda line: print(line, flush=True))
"""


def running(token: str) -> list[int]:
    """Processes whose command line holds ``token``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline and b"python" not in cmdline:
            found.append(int(pid))
    return found


def test_sigkilled_task_takes_every_process_of_its_command_along(tmp_path):
    token = f"2.{os.getpid()}{time.monotonic_ns() % 10**6:06d}"  # a sleep of ~2 s, ours alone
    command = f"echo partial > x && sleep {token} && echo done >> x"
    task = subprocess.Popen([sys.executable, "-c", TASK, command, str(tmp_path)])
    try:
        deadline = time.monotonic() + 20
        while not running(token):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        started = time.monotonic()
        task.kill()  # SIGKILL: no handler, no on_kill
        task.wait()
        while running(token) and time.monotonic() < started + 1:
            time.sleep(0.02)
        assert running(token) == []
        time.sleep(max(0.0, started + 2.5 - time.monotonic()))  # past the sleep's end
        assert (tmp_path / "x").read_text() == "partial\n"
    finally:
        for pid in running(token):
            os.kill(pid, signal.SIGKILL)


def test_processes_left_running_or_detached_are_killed_when_the_shell_exits(tmp_path):
    token = f"1.{os.getpid()}{time.monotonic_ns() % 10**6:06d}"
    late = tmp_path / "late"
    command = f"setsid sleep {token} & (sleep {token}; touch {late}) & sleep 0.2; echo started"
    lines = []
    try:
        Command(call(tmp_path, command)).run(lines.append)
        ended = time.monotonic()
        assert lines[0] == "started"
        assert re.fullmatch(r"killed [1-3] process\(es\) the command left running", lines[1])
        assert running(token) == []
        time.sleep(max(0.0, ended + 1.5 - time.monotonic()))
        assert not late.exists()
    finally:
        for pid in running(token):
            os.kill(pid, signal.SIGKILL)


def test_the_supervisor_finds_every_process_below_it_without_scanning_all(tmp_path):
    """The walk down the kernel's children lists finds what a scan of every process
    finds: children, grandchildren, and processes that left the process group."""
    token = f"5.{os.getpid()}{time.monotonic_ns() % 10**6:06d}"
    command = f"sleep {token} & (sleep {token} & setsid sleep {token} & wait) & wait"
    tree = subprocess.Popen(["bash", "-c", command])
    try:
        deadline = time.monotonic() + 20
        while len(running(token)) < 3:
            assert time.monotonic() < deadline, "the tree never started"
            time.sleep(0.02)
        walked = set(supervise.descendants(os.getpid()))
        assert {tree.pid, *running(token)} <= walked
        assert walked == set(supervise._scanned(os.getpid()))
    finally:
        for pid in running(token):
            os.kill(pid, signal.SIGKILL)
        tree.wait()


def test_the_command_gets_the_environment_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("LANG", "C")  # where Python would set LC_CTYPE for itself
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_CTYPE", raising=False)
    monkeypatch.setenv("PYTHONPATH", "/nowhere")
    lines = []
    Command(call(tmp_path, 'echo "${LC_CTYPE-unset} $LANG $PYTHONPATH"')).run(lines.append)
    assert lines == ["unset C /nowhere"]


def test_timeout_holds_for_a_command_that_closed_its_output(tmp_path):
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=r"\(timed out after 1s\)"):
        Command(call(tmp_path, "exec > /dev/null 2>&1; sleep 30", timeout=1)).run(print)
    assert time.monotonic() - started < 10


def test_pipelines_get_default_signals(tmp_path):
    lines = []
    Command(call(tmp_path, "yes | head -2")).run(lines.append)
    assert lines == ["y", "y"]  # yes ends on SIGPIPE, quietly, as in a terminal


# --- Commands cannot change their inputs --------------------------------------------


@pytest.fixture
def first(tmp_path) -> Path:
    """A committed input folder: out.txt and a sub-folder."""
    folder = tmp_path / "objects" / "first" / "0" / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "out.txt").write_text("first\n")
    (folder / "sub" / "part").write_text("1\n")
    return folder


def digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


APPEND = 'echo more >> "$ALAMODE_INPUT_FIRST/out.txt"'


@pytest.mark.skipif(os.geteuid() != 0, reason="read-only mounts need root")
def test_an_input_is_read_only_for_the_command(tmp_path, first):
    before = digest(first)
    lines = []
    expected = (
        r"it tried to write into its input 'first' \(ALAMODE_INPUT_FIRST\), which is read-only"
    )
    with pytest.raises(CommandFailed, match=expected) as failed:
        Command(call(tmp_path, APPEND, inputs={"first": str(first)})).run(lines.append)
    assert not isinstance(failed.value, InputModified)
    assert "Read-only file system" in lines[0]
    assert digest(first) == before
    # The mount was the command's alone: the folder stays writable outside it.
    assert str(first) not in Path("/proc/self/mountinfo").read_text()
    (first / "ours").write_text("")


@pytest.mark.skipif(os.geteuid() != 0, reason="read-only mounts need root")
def test_more_read_only_folders_can_be_named(tmp_path, first):
    records = first.parent
    command = f'echo "$ALAMODE_INPUT_FIRST/../record.json"; touch {records}/record.json'
    run = dataclasses.replace(
        call(tmp_path, command, inputs={"first": str(first)}), read_only=(str(records),)
    )
    expected = f"status 1: it tried to write into {records}, which is read-only to commands"
    with pytest.raises(CommandFailed, match=re.escape(expected) + "$"):
        Command(run).run(lambda line: None)
    assert not (records / "record.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="read-only mounts need root")
def test_a_write_that_names_no_input_still_says_inputs_are_read_only(tmp_path, first):
    command = 'cd "$ALAMODE_INPUT_FIRST" && touch cache'
    expected = r"hit a read-only file system; its inputs are read-only: 'first' \(ALAMODE_INPUT_"
    with pytest.raises(CommandFailed, match=expected):
        Command(call(tmp_path, command, inputs={"first": str(first)})).run(lambda line: None)
    assert not (first / "cache").exists()


@pytest.mark.parametrize(
    ("command", "changed"),
    [
        (APPEND, "out.txt"),
        ('touch "$ALAMODE_INPUT_FIRST/sub/cache"', "sub, sub/cache"),
        ('rm "$ALAMODE_INPUT_FIRST/sub/part"', "sub, sub/part"),
        ('chmod 600 "$ALAMODE_INPUT_FIRST/out.txt"; false', "out.txt"),
        ('rm -r "$ALAMODE_INPUT_FIRST"', "., out.txt, sub, sub/part"),
        # Rewritten in place at the same size, mode and mtime put back: ctime tells.
        (
            'f="$ALAMODE_INPUT_FIRST/out.txt"; touch -r "$f" "$ALAMODE_OUTPUT/t"; '
            'new=$(tr a-z A-Z < "$f"); printf "%s\\n" "$new" > "$f"; '
            'touch -r "$ALAMODE_OUTPUT/t" "$f"',
            "out.txt",
        ),
    ],
)
def test_without_mounts_a_changed_input_is_found_after_the_command(
    tmp_path, first, command, changed
):
    other = tmp_path / "other"
    other.mkdir()
    inputs = {"first": str(first), "other": str(other)}
    expected = f"the command modified its input 'first': {changed}$"
    with pytest.raises(InputModified, match=expected) as modified:
        Command(call(tmp_path, command, inputs=inputs), protect="check").run(lambda line: None)
    assert modified.value.inputs == ("first",)
    assert modified.value.task == "edge-enhance"


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_where_mounts_are_not_allowed_a_changed_input_is_found(tmp_path, first):
    # Without CAP_SYS_ADMIN (what a root without it, or any other user, has).
    script = TASK.replace("inputs={}", "inputs={'first': sys.argv[3]}")
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-sys_admin",
            sys.executable,
            "-c",
            script,
            APPEND,
            tmp_path,
            first,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        "inputs were not mounted read-only (Operation not permitted): checked for changes instead"
        in done.stdout
    )
    assert "InputModified: task 't': the command modified its input 'first': out.txt" in (
        done.stderr
    )


def test_a_report_larger_than_a_pipe_buffer_arrives_whole(tmp_path):
    inputs = {f"in{i:02d}": tmp_path / f"in{i:02d}" for i in range(60)}
    for folder in inputs.values():
        folder.mkdir()
    names = " ".join(f"{n:0100d}" for n in range(25))
    command = f"for d in {' '.join(map(str, inputs.values()))}; do (cd $d && touch {names}); done"
    run = call(tmp_path, command, inputs={name: str(path) for name, path in inputs.items()})
    with pytest.raises(InputModified) as modified:
        Command(run, protect="check").run(lambda line: None)
    assert modified.value.inputs == tuple(inputs)
    assert all(len(paths) == 20 for paths in modified.value.changed.values())


def test_input_modified_survives_pickling():
    error = InputModified({"b": ["x"], "a": [".", "y"]}, task="t")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.inputs, copy.changed, copy.task) == (("a", "b"), error.changed, "t")
    assert str(copy) == str(error) == "task 't': the command modified its input 'a': ., y; 'b': x"


def test_without_mounts_reading_inputs_is_fine(tmp_path, first):
    lines = []
    command = 'cat "$ALAMODE_INPUT_FIRST/out.txt" > "$ALAMODE_OUTPUT/copy"; echo ok'
    Command(call(tmp_path, command, inputs={"first": str(first)}), protect="check").run(
        lines.append
    )
    assert lines[-1] == "ok"
    assert (tmp_path / "out" / "copy").read_text() == "first\n"


def test_protection_setting_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ALAMODE__PROTECT_INPUTS", "none")
    with pytest.raises(
        CommandFailed, match="protect_inputs must be one of mount, check, not 'none'"
    ):
        Command(call(tmp_path, "true")).run(lambda line: None)


def test_the_deployments_secrets_never_reach_a_command(tmp_path, monkeypatch):
    import alamode_airflow._compat  # noqa: F401  Airflow set up before its database is faked

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "forge-tokens")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "open-connections")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u:pw@db/airflow")
    monkeypatch.setenv("AIRFLOW_CONN_ALAMODE_STORE", '{"password": "s3-key"}')
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", "/dags")  # not a secret: kept
    monkeypatch.delenv("AIRFLOW__ALAMODE__RECORD_CACHE")  # the tests' own settings
    monkeypatch.delenv("AIRFLOW__ALAMODE__PARSE_CACHE")
    lines = []
    Command(call(tmp_path, "env | grep ^AIRFLOW | sort")).run(lines.append)
    assert lines == ["AIRFLOW__CORE__DAGS_FOLDER=/dags"]


def test_the_task_runners_parsing_context_never_reaches_a_command(tmp_path, monkeypatch):
    """Airflow leaves the dag_id and task_id it parsed the file for in the task
    process's environment: an ``alamode`` or ``airflow`` command run by the task would
    otherwise build that DAG as for that one task."""
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "diamonds")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "d")
    lines = []
    Command(call(tmp_path, "env | grep PARSING_CONTEXT || echo none")).run(lines.append)
    assert lines == ["none"]


def test_the_shell_is_found_on_the_commands_path_as_a_shell_finds_it(tmp_path):
    """The first executable ``bash`` of the command's PATH runs it: a file that is not
    executable, or a folder, of that name is passed over (as ``execvp`` would)."""
    for folder in ("plain", "folder/bash", "wrapped"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "plain" / "bash").write_text("#!/bin/sh\necho plain\n")  # mode 0644
    wrapper = tmp_path / "wrapped" / "bash"
    wrapper.write_text('#!/bin/sh\necho "wrapped $1"\nexec /bin/bash "$@"\n')
    wrapper.chmod(0o755)
    path = os.pathsep.join(str(tmp_path / f) for f in ("plain", "folder", "wrapped"))
    invocation = call(tmp_path, "echo ran")
    invocation = dataclasses.replace(invocation, env={"PATH": f"{path}{os.pathsep}/usr/bin:/bin"})
    lines = []
    Command(invocation).run(lines.append)
    assert lines == ["wrapped -c", "ran"]


def test_a_shell_missing_from_path_is_never_taken_from_the_working_folder(tmp_path):
    """No ``bash`` on the command's PATH: the command cannot start (127), even with an
    executable ``bash`` in its working folder, as a shell would refuse it."""
    planted = tmp_path / "bash"
    planted.write_text("#!/bin/sh\necho planted\n")
    planted.chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    invocation = dataclasses.replace(call(tmp_path, "echo ran"), env={"PATH": str(empty)})
    lines = []
    with pytest.raises(CommandFailed, match="status 127"):
        Command(invocation).run(lines.append)
    assert "planted" not in lines
    assert any("cannot start bash" in line for line in lines)
