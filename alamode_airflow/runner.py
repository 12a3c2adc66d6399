"""Running a task's command: a shell under a supervisor process (``supervise.py``),
output streamed to the task log, locations handed over in environment variables.

Every process the command starts dies with the task, however the task dies, and
whatever the command leaves running when its shell exits is killed. The command cannot
change its inputs: they are mounted read-only for it where the platform allows (root,
CAP_SYS_ADMIN), else compared with a snapshot after it ran (``InputModified``)."""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from a_la_mode import AlamodeError


class CommandFailed(AlamodeError):
    """The task's command exited non-zero, timed out or could not start."""

    exit_code = 8


class InputModified(CommandFailed):
    """The command changed files in its inputs (found after it ran, where they could
    not be mounted read-only): those committed outputs are no longer what their
    records say. ``inputs`` names them, ``changed`` maps each to the changed paths
    (relative to the input's folder, ``.`` the folder itself; at most 20 each)."""

    def __init__(self, changed: Mapping[str, Sequence[str]], *, task: str | None = None) -> None:
        self.changed = {name: tuple(paths) for name, paths in sorted(changed.items())}
        self.inputs: tuple[str, ...] = tuple(self.changed)
        listed = "; ".join(f"{name!r}: {', '.join(paths)}" for name, paths in self.changed.items())
        super().__init__(f"the command modified its input {listed}", task=task)

    def __reduce__(self):
        return (_input_modified, (self.changed, self.task))


def _input_modified(changed: Mapping[str, Sequence[str]], task: str | None) -> InputModified:
    return InputModified(changed, task=task)


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
    # More folders the command must not change (mounted read-only with the inputs).
    read_only: tuple[str, ...] = ()


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


#: What a worker's environment holds that a command must not see: the deployment's
#: secrets (the JWT secret forges task tokens, the Fernet key opens every stored
#: connection) and connections, variables and database or broker URLs (with their
#: passwords). A command that prints its environment would put them in a task log.
_SECRET_PREFIXES = ("AIRFLOW_CONN_", "AIRFLOW_VAR_")
_SECRET_MARKS = ("SECRET", "FERNET", "PASSWORD", "SQL_ALCHEMY_CONN", "BROKER_URL", "BACKEND")


def is_secret(name: str) -> bool:
    """Whether the worker's variable ``name`` is kept from commands."""
    if name.startswith(_SECRET_PREFIXES):
        return True
    return name.startswith("AIRFLOW__") and (
        name.endswith(("_CMD", "_SECRET")) or any(mark in name for mark in _SECRET_MARKS)
    )


#: Where the task runner names the task it parsed the DAG file for (and leaves it):
#: a command that builds DAGs (``alamode``, ``airflow``) must build them whole.
_PARSING_CONTEXT = "_AIRFLOW_PARSING_CONTEXT_"


def environment(call: Invocation, base: Mapping[str, str]) -> dict[str, str]:
    """A local command's environment: the worker's ``base`` without its secrets
    (``is_secret``) or Airflow's parsing context, then ``variables``."""
    env = {
        name: value
        for name, value in base.items()
        if not (is_secret(name) or name.startswith(_PARSING_CONTEXT))
    }
    # The worker's own interpreter first, so "python script.py" finds the packages
    # Airflow runs with.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), base.get("PATH", "")])
    env.update(variables(call))
    return env


SUPERVISOR = str(Path(__file__).with_name("supervise.py"))
# Imported, not run as a script: a script is compiled from source at every start, a
# module's bytecode is cached (by pip at install time, or as this interpreter caches).
# It leaves with os._exit once its report is written: nothing is left to flush, and
# tearing the interpreter down would only delay the task.
_LAUNCH = (
    f"import os, sys; sys.path.insert(0, {os.path.dirname(SUPERVISOR)!r}); "
    "import supervise; os._exit(supervise.main(sys.argv))"
)
PROTECTIONS = ("mount", "check")
READ_ONLY = "Read-only file system"  # strerror(EROFS), as commands print it
KILL_GRACE_S = 10.0  # for the supervisor to stop the command before its group is killed


class Command:
    """One running command, under ``supervise.py``; ``kill`` ends every process of it.

    ``protect`` says how inputs are kept unchanged: ``mount`` (read-only mounts where
    the platform allows, else ``check``) or ``check`` (compare snapshots after the
    command); default ``[alamode] protect_inputs``, else ``mount``."""

    def __init__(self, call: Invocation, protect: str | None = None) -> None:
        self.call = call
        self.protect = protect
        self.process: subprocess.Popen[str] | None = None
        self.timed_out = False

    def run(self, log: Callable[[str], None]) -> None:
        """Run to completion, sending each output line to ``log``; raise CommandFailed
        unless it exits 0 within the timeout, InputModified if it changed an input."""
        call = self.call
        mount = self._protection() == "mount"
        env = environment(call, os.environ)
        report_fd, result_fd = os.pipe()
        spec_text = marshal.dumps(
            {
                "parent": os.getpid(),
                "argv": ["bash", "-c", call.command],
                # Python sets LC_CTYPE at start-up in the C locale; the command must not see it.
                "unset": [name for name in ("LC_CTYPE",) if name not in env],
                "inputs": dict(call.inputs),
                "read_only": list(call.read_only),
                "mount": mount,
                "result_fd": result_fd,
            }
        ).hex()
        try:
            self.process = subprocess.Popen(
                # The standard library only (-S): it starts fast, whatever the
                # command's environment says about Python (-I).
                [sys.executable, "-I", "-S", *_bytecode_flags(), "-c", _LAUNCH, spec_text],
                cwd=call.cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                # Its own process group: a last resort reaches everything in it at once.
                start_new_session=True,
                pass_fds=(result_fd,),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(report_fd)
            raise CommandFailed(f"cannot start command: {exc}", task=call.task) from exc
        finally:
            os.close(result_fd)
        status, report, refused = self._watch(report_fd, log)
        self._judge(status, report, refused, log)

    def _watch(self, report_fd: int, log: Callable[[str], None]) -> tuple[int, dict, set[str]]:
        """Log every line until the command ends (or times out); its status, the
        supervisor's report, and what lines saying "Read-only file system" named
        (inputs, read-only folders, or "" for nothing known)."""
        call = self.call
        timer = threading.Timer(call.timeout, self._time_out) if call.timeout else None
        if timer:
            timer.start()
        refused = set()
        try:
            with os.fdopen(report_fd, "rb") as report:
                with self.process.stdout:
                    for line in self.process.stdout:
                        log(line.rstrip("\n"))
                        if READ_ONLY in line:
                            refused |= _named(call, line) or {""}
                # Before waiting: the supervisor exits only once its report is read.
                # Written by our own supervisor with this interpreter: marshal's format.
                data = report.read()
                found = marshal.loads(data) if data else {}
            return self.process.wait(), found, refused
        finally:
            if timer:
                timer.cancel()

    def _judge(self, status: int, report: dict, refused: set[str], log) -> None:
        call = self.call
        if report.get("mount_error"):
            reason = report["mount_error"]
            log(f"inputs were not mounted read-only ({reason}): checked for changes instead")
        if report.get("leftovers"):
            log(f"killed {report['leftovers']} process(es) the command left running")
        if report.get("modified"):
            raise InputModified(report["modified"], task=call.task)
        if report.get("error"):
            raise CommandFailed(
                f"the command's supervisor failed: {report['error']}", task=call.task
            )
        status = report.get("status", status)
        if status == 0:
            return
        message = f"command exited with status {status}"
        if self.timed_out:
            message += f" (timed out after {call.timeout}s)"
        elif report.get("stopped"):
            message += f" ({report['stopped']})"
        if refused and report.get("mounted"):
            message += ": " + _read_only_hint(call, refused)
        raise CommandFailed(message, task=call.task)

    def _protection(self) -> str:
        if self.protect is None:
            from alamode_airflow import settings

            self.protect = settings.get("protect_inputs") or "mount"
        if self.protect not in PROTECTIONS:
            raise CommandFailed(
                f"[alamode] protect_inputs must be one of {', '.join(PROTECTIONS)}, "
                f"not {self.protect!r}",
                task=self.call.task,
            )
        return self.protect

    def _time_out(self) -> None:
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        """Ask the supervisor to kill every process of the command; kill the process
        group ourselves if it has not ended after ``KILL_GRACE_S``."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            backstop = threading.Timer(KILL_GRACE_S, self._kill_group)
            backstop.daemon = True
            backstop.start()

    def _kill_group(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def _bytecode_flags() -> list[str]:
    """How this interpreter caches bytecode, for the supervisor (``-I`` ignores the
    ``PYTHON*`` variables that say it): the same cache folder, and no writing where
    this process writes none."""
    flags = ["-B"] if sys.dont_write_bytecode else []
    if sys.pycache_prefix:
        flags += ["-X", f"pycache_prefix={sys.pycache_prefix}"]
    return flags


def _named(call: Invocation, line: str) -> set[str]:
    """The inputs (by name) and other read-only folders whose location ``line`` holds."""
    places = {**call.inputs, **{folder: folder for folder in call.read_only}}
    return {name for name, path in places.items() if path in line or os.path.realpath(path) in line}


def _read_only_hint(call: Invocation, refused: set[str]) -> str:
    """Why a command's write failed, from what its "Read-only file system" lines
    named: inputs, other read-only folders, or nothing ("")."""
    inputs = sorted(refused & set(call.inputs))
    folders = sorted(refused & set(call.read_only))
    listed = ", ".join(f"{name!r} ({env_name(name)})" for name in inputs or sorted(call.inputs))
    if inputs:
        return f"it tried to write into its input {listed}, which is read-only"
    if folders:
        return f"it tried to write into {', '.join(folders)}, which is read-only to commands"
    return f"it hit a read-only file system; its inputs are read-only: {listed}"
