"""The supervisor between a task and its command.

``runner.Command`` starts this module with the worker's interpreter (``python -I -S``,
the standard library only, so it starts fast and whatever the command's environment),
as the task process's direct child, in a process group of its own. It starts once per
task attempt, so it imports little and is imported from its cached bytecode, not
compiled as a script: no ``json`` (its regular expressions cost more than the rest of its
start), no ``contextlib`` (``collections`` and ``functools`` with it) and ``_signal``, the
C module ``signal`` wraps, without the enums ``signal`` builds at import, and ``_ctypes``
without the types ``ctypes`` defines; an interpreter with these imports starts in about
two thirds of the time. It:

- dies with the task: the kernel sends it SIGTERM when the task process dies, SIGKILL
  included (``PR_SET_PDEATHSIG``; it also polls its parent once a second), and it then
  kills every process the command started. It is a *child subreaper*, so processes
  that left the command's process group (``setsid``, daemons) are re-parented to it and
  found through ``/proc`` too (a walk down the command's tree, never a scan of every
  process of the machine where the kernel lists each process's children);
- kills whatever the command left running when its shell exits, so nothing writes into
  the output after the engine commits it;
- makes the inputs read-only: in a private mount namespace each input folder is
  bind-mounted onto itself read-only (this needs CAP_SYS_ADMIN: root, in most
  containers not). Where that fails, it records a snapshot of every entry under every
  input (path, size, mtime, inode, mode) before the command and compares it after;
- forwards the command's exit status and reports to the task, on the file descriptor
  it was given, one dictionary in ``marshal``'s format (the same interpreter writes
  and reads it, through a pipe only the two hold): ``status`` (as
  ``Popen.returncode``), ``mounted``, ``mount_error``, ``stopped`` (why it killed the
  command, if it did), ``modified`` (input name -> changed paths), ``leftovers``
  (processes killed after the shell exited) and ``error`` (the supervisor's own
  failure: status 125).

Its own exit status is the command's (128 + N for signal N, like bash).
"""

from __future__ import annotations

import _ctypes  # ``ctypes`` without its types: see ``_Libc``
import _signal as signal  # ``signal`` without its enums: see above
import marshal
import os
import stat
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
# Flags a read-only remount must keep (statvfs's ST_* values are the MS_* values):
# nosuid, nodev, noexec, noatime, nodiratime, relatime.
KEEP = 2 | 4 | 8 | 1024 | 2048 | (1 << 21)
STOP = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
WAITED = {signal.SIGCHLD, *STOP}
MAX_LISTED = 20  # changed paths reported per input


class _Int(_ctypes._SimpleCData):
    _type_ = "i"


class _Function(_ctypes.CFuncPtr):
    """A libc function as ``ctypes.CDLL(None, use_errno=True)`` gives it: C's
    calling convention, an ``int`` result, ``errno`` kept for ``get_errno``. Built on
    ``_ctypes`` directly: ``import ctypes`` defines every C type and costs the
    supervisor's start about 3 ms, a third of it, and this needs one type."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _Libc:
    """The C library's ``prctl``, ``unshare`` and ``mount``; arguments are ints,
    bytes (``char *``) and None (``NULL``), as ``ctypes`` passes them."""

    _handle = _ctypes.dlopen(None)

    def __getattr__(self, name: str) -> _Function:
        function = _Function((name, self))
        setattr(self, name, function)
        return function


_libc = _Libc()


def _call(function, *args) -> None:
    if function(*args) != 0:
        errno = _ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def mount_read_only(paths: list[str]) -> None:
    """Make each folder read-only for this process and its children only."""
    _call(_libc.unshare, CLONE_NEWNS)
    # Private first: the bind mounts below must not propagate to the host.
    _call(_libc.mount, b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    for path in paths:
        raw = os.fsencode(path)
        _call(_libc.mount, raw, raw, None, MS_BIND | MS_REC, None)
        kept = os.statvfs(path).f_flag & KEEP
        _call(_libc.mount, None, raw, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept, None)


def snapshot(folder: str) -> dict[str, tuple[int, ...]]:
    """Every entry under ``folder`` (itself as ``.``): size, mtime_ns, ctime_ns, inode,
    mode. ctime catches a rewrite whose size and mtime were put back (no user can set
    ctime).
    Entries that vanish or cannot be listed are left out (so a removed input shows as
    every path removed)."""
    entries = {}
    pending = [(folder, ".")]
    while pending:
        path, name = pending.pop()
        try:
            info = os.lstat(path)
            entries[name] = (
                info.st_size,
                info.st_mtime_ns,
                info.st_ctime_ns,
                info.st_ino,
                info.st_mode,
            )
            if stat.S_ISDIR(info.st_mode):
                with os.scandir(path) as listing:
                    for entry in listing:
                        child = entry.name if name == "." else f"{name}/{entry.name}"
                        pending.append((entry.path, child))
        except OSError:
            continue
    return entries


def changes(before: dict, after: dict) -> list[str]:
    """Paths added, removed or changed between two snapshots, sorted."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def descendants(root: int) -> list[int]:
    """Every process below ``root``: a walk down the kernel's lists of each thread's
    children (``/proc/<pid>/task/<tid>/children``), which reads the command's own tree
    and not every process of the machine; a scan of all of ``/proc`` where the kernel
    keeps no such lists. A list may miss a process forked or re-parented meanwhile:
    ``kill_all`` looks again until nothing is left."""
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        return _scanned(root)
    found, pending = [], [root]
    while pending:
        for child in _children(pending.pop()):
            found.append(child)
            pending.append(child)
    return found


def _children(pid: int) -> list[int]:
    """The children of every thread of ``pid``; none once it is gone."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as listing:
                found += [int(number) for number in listing.read().split()]
        except OSError:
            continue  # the thread or process ended meanwhile
    return found


def _scanned(root: int) -> list[int]:
    """Every process below ``root``, from the parent of every process in ``/proc``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(name))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), ()):
            found.append(child)
            pending.append(child)
    return found


def reap() -> dict[int, int]:
    """Collect every exited child (ours, or orphans re-parented to us): pid -> status."""
    statuses = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return statuses
        if pid == 0:
            return statuses
        statuses[pid] = status


def has_children() -> bool:
    """Whether any child is left, running or exited and not yet reaped. As a child
    subreaper we are the parent of every orphan below us, so no child means no
    descendant: the kernel's answer, where a listing may miss a process in passing."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_all(limit_s: float = 10.0) -> int:
    """SIGKILL every descendant until none is left (a process may fork between the
    scan and the kill: the next round finds the new one). How many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        reap()
        if not has_children():
            break
        pids = descendants(os.getpid())
        for pid in pids:
            _ignoring(ProcessLookupError, os.kill, pid, signal.SIGKILL)
        killed.update(pids)
        time.sleep(0.002)
    return len(killed)


def wait_for(pid: int, parent: int) -> tuple[int | None, str | None]:
    """The command's wait status, or (None, why) when the task asked to stop or died."""
    while True:
        info = signal.sigtimedwait(WAITED, 1.0)
        if info is None:
            if os.getppid() != parent:
                return None, "the task process died"
        elif info.si_signo in STOP:
            gone = os.getppid() != parent
            return None, "the task process died" if gone else "the task stopped it"
        else:
            status = reap().get(pid)
            if status is not None:
                return status, None


def on_path(name: str) -> str | None:
    """Where ``name`` is, as a shell finds it: itself when it holds a ``/``, else the
    first executable file of that name in a folder of ``PATH``; None when there is
    none (the child then leaves the search to ``os.execvp``, which fails saying why).
    Found here, before the fork, not by ``os.execvp`` in the child, which imports
    ``warnings`` and tries every folder before it: milliseconds of every start."""
    if "/" in name:
        return name
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", name)
        if os.access(path, os.X_OK) and stat.S_ISREG(_mode(path)):
            return path
    return None


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def start(argv: list[str], unset: list[str], mask: set) -> int:
    """Fork and exec the command, as it would start from a shell."""
    program = on_path(argv[0])
    pid = os.fork()
    if pid:
        return pid
    try:
        for name in unset:
            os.environ.pop(name, None)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # should we be killed ourselves
        # Python ignores these; an exec'd program must get the defaults back.
        for number in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if program is not None:
            # Where it cannot run after all (not a program, changed since), the search
            # goes on past it, as a shell's would.
            _ignoring(OSError, os.execv, program, argv)
        os.execvp(argv[0], argv)
    except BaseException as exc:  # the child must never return
        _ignoring(OSError, os.write, 2, f"cannot start {argv[0]}: {exc}\n".encode())
    os._exit(127)


def protect(spec: dict, report: dict) -> dict[str, dict]:
    """Mount the inputs read-only, or else snapshot them; the snapshots taken."""
    inputs = {name: path for name, path in spec["inputs"].items() if os.path.isdir(path)}
    extra = [path for path in spec.get("read_only", ()) if os.path.isdir(path)]
    if spec.get("mount", True):
        try:
            mount_read_only([*inputs.values(), *extra])
            report["mounted"] = True
            return {}
        except OSError as exc:
            report["mount_error"] = exc.strerror or str(exc)
    return {name: snapshot(path) for name, path in inputs.items()}


def supervise(spec: dict, report: dict) -> int:
    """Run the command under watch; its exit code as ``Popen.returncode`` gives it."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != spec["parent"]:
        report["stopped"] = "the task process died"  # before the line above took effect
        return -signal.SIGKILL
    before = protect(spec, report)
    pid = start(spec["argv"], spec.get("unset", []), mask)
    status, report["stopped"] = wait_for(pid, spec["parent"])
    killed = kill_all()
    if status is not None:
        report["leftovers"] = killed
    report["modified"] = {}
    for name, entries in before.items():
        changed = changes(entries, snapshot(spec["inputs"][name]))
        if changed:
            report["modified"][name] = changed[:MAX_LISTED]
    return -signal.SIGKILL if status is None else os.waitstatus_to_exitcode(status)


def _silence() -> None:
    """Standard output and error to /dev/null."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def _send(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _ignoring(error: type[BaseException], function, *args) -> None:
    """``function(*args)``, ``error`` ignored (``contextlib.suppress``, not imported)."""
    try:
        function(*args)
    except error:
        return


def main(argv: list[str]) -> int:
    spec = marshal.loads(bytes.fromhex(argv[1]))
    result = spec["result_fd"]
    os.set_inheritable(result, False)
    report: dict = {"mounted": False, "mount_error": None, "stopped": None, "error": None}
    try:
        report["status"] = supervise(spec, report)
    except Exception as exc:  # reported to the task, which fails
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["status"] = 125
        kill_all()
    finally:
        # The task reads the command's output to its end, then this report: end the
        # output first, so a report larger than a pipe's buffer cannot block us both.
        _ignoring(OSError, _silence)
        _ignoring(OSError, _send, result, marshal.dumps(report))  # the task may be gone
    return report["status"] if report["status"] >= 0 else 128 - report["status"]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
