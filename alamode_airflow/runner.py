"""Running a task's command: a shell in a subprocess, output streamed to the task log,
locations handed over in environment variables."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from a_la_mode import AlamodeError


class CommandFailed(AlamodeError):
    """The task's command exited non-zero, timed out or could not start."""

    exit_code = 8


@dataclass(frozen=True)
class Invocation:
    """Everything a command needs: what to run, where, and the locations it reads
    and writes."""

    command: str
    cwd: str
    output: str
    output_id: str
    task: str
    inputs: Mapping[str, str]  # dependency name -> location of its committed output
    env: Mapping[str, str]
    timeout: float | None = None


def env_name(task: str) -> str:
    """``ALAMODE_INPUT_<NAME>`` for a task name: upper case, other characters as ``_``.

    >>> env_name("edge-enhance.v2")
    'ALAMODE_INPUT_EDGE_ENHANCE_V2'
    """
    return "ALAMODE_INPUT_" + re.sub(r"[^A-Z0-9_]", "_", task.upper())


def variables(call: Invocation) -> dict[str, str]:
    """What a command is given wherever it runs: the spec's ``env``, then ours."""
    env = dict(call.env)
    env.update(
        {
            "ALAMODE_OUTPUT": call.output,
            "ALAMODE_OUTPUT_ID": call.output_id,
            "ALAMODE_TASK": call.task,
            "ALAMODE_INPUTS": json.dumps(dict(call.inputs), sort_keys=True),
        }
    )
    env.update({env_name(name): location for name, location in call.inputs.items()})
    return env


def environment(call: Invocation, base: Mapping[str, str]) -> dict[str, str]:
    """A local command's environment: the worker's ``base``, then ``variables``."""
    env = dict(base)
    # The worker's own interpreter first, so "python script.py" finds the packages
    # Airflow runs with.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), base.get("PATH", "")])
    env.update(variables(call))
    return env


_PR_SET_PDEATHSIG = 1
# Looked up once here: between fork and exec (where the task process may have other
# threads) the child only calls it, loading nothing.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child: be killed when the task process dies (a worker killed with
    SIGKILL takes its command along instead of leaving it running unsupervised)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Command:
    """One running command; ``kill`` ends its whole process group."""

    def __init__(self, call: Invocation) -> None:
        self.call = call
        self.process: subprocess.Popen[str] | None = None
        self.timed_out = False

    def run(self, log: Callable[[str], None]) -> None:
        """Run to completion, sending each output line to ``log``; raise CommandFailed
        unless it exits 0 within the timeout."""
        call = self.call
        try:
            self.process = subprocess.Popen(
                ["bash", "-c", call.command],
                cwd=call.cwd,
                env=environment(call, os.environ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                # Its own process group, so a timeout or kill reaches its children.
                start_new_session=True,
                preexec_fn=_die_with_parent if _prctl else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise CommandFailed(f"cannot start command: {exc}", task=call.task) from exc
        timer = threading.Timer(call.timeout, self._time_out) if call.timeout else None
        if timer:
            timer.start()
        try:
            with self.process.stdout:
                for line in self.process.stdout:
                    log(line.rstrip("\n"))
            status = self.process.wait()
        finally:
            if timer:
                timer.cancel()
        if status != 0:
            cause = f"(timed out after {call.timeout}s)" if self.timed_out else ""
            raise CommandFailed(
                f"command exited with status {status} {cause}".strip(), task=call.task
            )

    def _time_out(self) -> None:
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
