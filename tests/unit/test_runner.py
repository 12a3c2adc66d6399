"""Running a command: environment, streaming, failures and timeouts, in real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alamode_airflow.runner import Command, CommandFailed, Invocation, env_name


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


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "child-survived"
    command = f"(sleep 3; touch {marker}) & sleep 30"
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=r"\(timed out after 1s\)"):
        Command(call(tmp_path, command, timeout=1)).run(lambda line: None)
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists()


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
