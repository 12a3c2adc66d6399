"""Manifests, links, sealing and verifying, on real files (and, as root, a real non-root
user for what permission bits stop)."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import stat
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from alamode_airflow.manifests import (
    ManifestEntry,
    OutputRefused,
    manifest,
    remove,
    seal,
    sync_dir,
    verify,
)

HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


@pytest.fixture
def out(tmp_path) -> Path:
    """An output folder as a command leaves it, beside a folder that is not the output."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("not ours")
    folder = tmp_path / "staging" / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "hello.txt").write_text("hello")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4096)
    return folder


def bind(path: Path) -> None:
    """Leave a socket file behind, as a server that died without cleaning up does."""
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_regular_files_are_listed_as_before(out):
    (out / "a-b").write_text("x")
    (out / "a").mkdir()
    (out / "a" / "b").write_text("y")
    (out / "empty").mkdir()
    assert manifest(out) == (
        ManifestEntry("a/b", 1, sha(b"y")),  # component order, as pathlib sorts
        ManifestEntry("a-b", 1, sha(b"x")),
        ManifestEntry("hello.txt", 5, HELLO_SHA256),
        ManifestEntry("sub/b.bin", 1024 * 1024, sha(bytes(range(256)) * 4096)),
    )
    assert manifest(out)[2].to_json() == {"path": "hello.txt", "size": 5, "sha256": HELLO_SHA256}


def test_a_relative_link_inside_is_kept_as_a_link_and_survives_the_rename(out):
    os.symlink("../hello.txt", out / "sub" / "latest")
    os.symlink("sub", out / "current")  # a folder: recorded as a link, not walked twice
    entries = {entry.path: entry for entry in manifest(out)}
    assert sorted(entries) == ["current", "hello.txt", "sub/b.bin", "sub/latest"]
    assert entries["sub/latest"] == ManifestEntry(
        "sub/latest", 12, sha(b"../hello.txt"), link="../hello.txt"
    )
    assert entries["current"].link == "sub"
    committed = out.parent.parent / "objects" / "0"
    committed.parent.mkdir()
    os.rename(out.parent, committed)
    assert (committed / "data" / "sub" / "latest").read_text() == "hello"
    assert (committed / "data" / "current" / "latest").read_text() == "hello"
    assert verify(committed / "data", entries.values()) == []


@pytest.mark.parametrize(
    ("make", "path", "reason"),
    [
        (lambda o: os.symlink(o / "hello.txt", o / "abs"), "abs", "a link to the absolute path"),
        (lambda o: os.symlink("../../outside/secret", o / "l"), "l", "a link leaving the output"),
        (lambda o: os.symlink("../data/hello.txt", o / "back"), "back", "leaving the output"),
        (lambda o: os.symlink("../../outside", o / "sub" / "d"), "sub/d", "leaving the output"),
        (lambda o: os.symlink(o.parent.parent / "outside", o / "d"), "d", "the absolute path"),
        (lambda o: os.symlink("sub/nothing", o / "gone"), "gone", "a dangling link"),
        (lambda o: (os.symlink("y", o / "x"), os.symlink("x", o / "y")), "x", "dangling"),
        (lambda o: os.symlink("..", o / "sub" / "up"), "sub/up", "a folder holding it"),
        (lambda o: os.mkfifo(o / "sub" / "pipe"), "sub/pipe", "is a fifo"),
        (lambda o: bind(o / "sock"), "sock", "is a socket"),
    ],
    ids=["absolute", "leaving", "out-and-back", "folder-out", "folder-abs", "dangling", "loop",
         "cycle", "fifo", "socket"],
)  # fmt: skip
def test_what_cannot_be_kept_is_refused_naming_the_path_and_why(out, make, path, reason):
    make(out)
    with pytest.raises(OutputRefused) as refused:
        manifest(out)
    assert refused.value.path == path
    assert reason in str(refused.value)
    assert str(refused.value).startswith(f"output {path!r} ")
    assert str(OutputRefused(path, "why", task="blur")) == f"task 'blur': output {path!r} why"


def test_links_are_not_followed_while_walking(out, tmp_path):
    # A link inside, to a folder inside that links out: the link out is refused once,
    # under its own path, not again through the folder link.
    os.symlink("../../outside", out / "sub" / "away")
    os.symlink("sub", out / "via")
    with pytest.raises(OutputRefused) as refused:
        manifest(out)
    assert refused.value.path == "sub/away"
    assert verify(out, ()) == [
        "hello.txt: not in the manifest",
        "sub/b.bin: not in the manifest",
        "via: not in the manifest",
        "sub/away: is a link leaving the output ('../../outside'); only relative links to "
        "something inside the output are kept; copy it instead",
    ]


def modes(folder: Path) -> dict[str, int]:
    found = {}
    for here, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(here, name)
            found[path.relative_to(folder).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


def tree(staging: Path) -> Path:
    """An attempt as the engine leaves it before commit: data/ and record.json."""
    data = staging / "data"
    (data / "bin").mkdir(parents=True)
    (data / "empty").mkdir()
    (data / "table.csv").write_text("a,b\n")
    (data / "bin" / "run").write_text("#!/bin/sh\n")
    (data / "bin" / "run").chmod(0o750)
    os.symlink("bin/run", data / "run")
    (staging / "record.json").write_text("{}")
    staging.chmod(0o700)
    return staging


@pytest.mark.parametrize("slow_s", [float("inf"), -1.0], ids=["one-by-one", "at-once"])
def test_seal_makes_every_file_and_folder_read_only_and_keeps_the_manifest(tmp_path, slow_s):
    """Whether the disk flushes fast (one after another) or slowly (the rest at once)."""
    staging = tree(tmp_path / "attempt")
    before = manifest(staging / "data")
    seal(staging, slow_s=slow_s)
    assert modes(staging) == {
        "data": 0o555,
        "record.json": 0o444,
        "data/bin": 0o555,
        "data/empty": 0o555,
        "data/table.csv": 0o444,
        "data/bin/run": 0o555,  # executable stays executable
        "data/run": 0o777,  # a link has no mode of its own
    }
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700  # renamed by its owner next
    assert manifest(staging / "data") == before
    os.symlink(staging / "data", tmp_path / "named")  # named through a link: walked
    assert manifest(tmp_path / "named") == before
    sync_dir(tmp_path)
    remove(staging)
    assert not staging.exists()


def test_seal_through_a_link_to_the_folder_seals_every_folder(tmp_path):
    staging = tree(tmp_path / "attempt")
    os.symlink(staging / "data", tmp_path / "named")
    seal(tmp_path / "named")
    assert modes(staging / "data") == {
        "bin": 0o555, "empty": 0o555, "table.csv": 0o444, "bin/run": 0o555, "run": 0o777,
    }  # fmt: skip


def test_seal_refuses_a_special_file_before_changing_anything(tmp_path):
    staging = tree(tmp_path / "attempt")
    os.mkfifo(staging / "data" / "bin" / "pipe")
    before = modes(staging)
    with pytest.raises(OutputRefused, match="'data/bin/pipe' is a fifo"):
        seal(staging)
    assert modes(staging) == before


def test_seal_copies_every_file_hard_linked_from_outside(tmp_path):
    """Whoever owns the other name could change the committed bytes through it, even
    a read-only one (its owner can chmod it back): sealed outputs own their inodes."""
    staging = tree(tmp_path / "attempt")
    mine = tmp_path / "mine.csv"
    mine.write_text("mine")
    os.link(mine, staging / "data" / "copy.csv")
    committed = tree(tmp_path / "input")  # a committed input is sealed
    seal(committed)
    os.link(committed / "data" / "table.csv", staging / "data" / "input.csv")
    os.link(staging / "data" / "table.csv", staging / "data" / "twice.csv")  # both inside
    entries = manifest(staging / "data")
    seal(staging)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o644  # the user's file is untouched
    for name in ("copy.csv", "input.csv"):
        assert (staging / "data" / name).stat().st_nlink == 1
    mine.write_text("changed")  # through the other name: the output does not change
    os.chmod(committed / "data" / "table.csv", 0o644)
    (committed / "data" / "table.csv").write_text("changed")
    assert verify(staging / "data", entries) == []
    assert stat.S_IMODE((staging / "data" / "twice.csv").stat().st_mode) == 0o444


def nobody() -> tuple[int, int] | None:
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return (user.pw_uid, user.pw_gid) if os.geteuid() == 0 else None


def as_user(ids: tuple[int, int], step: Callable[[], None]) -> None:
    """Run ``step`` in a forked child with that user's IDs; re-raise its failure here."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        status = 0
        try:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
            step()
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            status = 1
        os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, message


@pytest.mark.skipif(nobody() is None, reason="needs root and a 'nobody' user")
def test_a_sealed_attempt_cannot_be_written_by_its_owner_but_commits_and_is_removed():
    ids = nobody()
    base = Path(tempfile.mkdtemp(prefix="alamode-seal-"))  # /tmp: reachable by nobody
    os.chown(base, *ids)
    try:
        as_user(ids, lambda: owner_steps(base))
    finally:
        shutil.rmtree(base)


def owner_steps(base: Path) -> None:
    staging = tree(base / "staging" / "attempt")
    seal(staging)
    data = staging / "data"
    for write in (
        lambda: (data / "table.csv").write_text("changed"),
        lambda: (data / "new.csv").write_text("added"),
        lambda: (data / "bin" / "run").unlink(),
        lambda: (data / "empty" / "x").mkdir(),
        lambda: shutil.rmtree(data),  # why remove() exists
    ):
        with pytest.raises(PermissionError):
            write()
    target = base / "objects" / "id" / "0"
    target.parent.mkdir(parents=True)
    os.rename(staging, target)  # another parent: needs write on the folder itself
    sync_dir(target.parent)
    assert (target / "data" / "run").read_text() == "#!/bin/sh\n"
    (base / "quarantine").mkdir()
    os.rename(target, base / "quarantine" / "id.0")
    remove(base / "quarantine" / "id.0")
    assert not (base / "quarantine" / "id.0").exists()


@pytest.mark.skipif(nobody() is None, reason="needs root and a 'nobody' user")
def test_what_its_owner_cannot_read_is_refused_and_remove_stays_inside_its_tree():
    ids = nobody()
    base = Path(tempfile.mkdtemp(prefix="alamode-seal-"))
    os.chown(base, *ids)
    try:
        as_user(ids, lambda: unreadable_steps(base))
    finally:
        shutil.rmtree(base)


def unreadable_steps(base: Path) -> None:
    staging = tree(base / "attempt")
    (staging / "data" / "bin" / "run").chmod(0o000)
    with pytest.raises(OutputRefused, match=r"'bin/run' cannot be read \(Permission denied\)"):
        manifest(staging / "data")
    (staging / "data" / "bin" / "run").chmod(0o755)
    (staging / "data" / "empty").chmod(0o000)
    with pytest.raises(OutputRefused, match=r"'empty' cannot be read"):
        manifest(staging / "data")
    assert verify(staging / "data", ()) == ["empty: cannot be read (Permission denied)"]
    (staging / "data" / "empty").chmod(0o755)
    seal(staging)
    with pytest.raises(PermissionError):  # the sealed folder above is not opened up
        remove(staging / "data" / "bin")
    assert stat.S_IMODE((staging / "data").stat().st_mode) == 0o555
    remove(staging)


def test_verify_of_a_folder_gone_finds_everything_missing(out, tmp_path):
    entries = manifest(out)
    remove(out)
    assert verify(out, entries) == ["hello.txt: missing", "sub/b.bin: missing"]
    tmp_path.chmod(0o555)
    with pytest.raises(FileNotFoundError):
        remove(tmp_path / "never")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o555
    tmp_path.chmod(0o755)


def test_verify_finds_each_kind_of_problem(out):
    os.symlink("hello.txt", out / "link")
    (out / "gone.txt").write_text("soon gone")
    entries = manifest(out)
    assert verify(out, entries) == []
    (out / "gone.txt").unlink()
    (out / "hello.txt").write_text("HELLO")
    (out / "link").unlink()
    os.symlink("sub/b.bin", out / "link")
    (out / "extra.txt").write_text("new")
    os.symlink(out / "hello.txt", out / "sub" / "abs")
    assert verify(out, entries) == [
        "gone.txt: missing",
        "hello.txt: sha256 differs",
        "link: link target differs",
        "extra.txt: not in the manifest",
        "sub/abs: is a link to the absolute path "
        f"{str(out / 'hello.txt')!r}; only relative links to something inside the output "
        "are kept; copy it instead",
    ]


def test_entries_read_as_written_and_old_entries_still_load():
    link = ManifestEntry("a/l", 3, sha(b"../x"), link="../x")
    assert ManifestEntry.from_json(link.to_json()) == link
    old = {"path": "a/b.txt", "size": 5, "sha256": HELLO_SHA256}
    assert ManifestEntry.from_json(old) == ManifestEntry("a/b.txt", 5, HELLO_SHA256)
    for bad in ("../x", "/etc/passwd", "a/../../x", "a//b", ".", ""):
        with pytest.raises(ValueError, match="not a path inside the output"):
            ManifestEntry.from_json({**old, "path": bad})
    for bad in ({**old, "mode": 420}, {**old, "size": "5"}, {**old, "link": 7}, {"path": "x"}):
        with pytest.raises(TypeError):
            ManifestEntry.from_json(bad)
