"""``load``: bytes or a file in, a verified immutable Pipeline out.

Every ID is recomputed; every way a file can be wrong becomes an AlamodeError naming
the file, the task and the reason, never an exception from inside bencode.py.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Mapping
from os import PathLike
from types import MappingProxyType
from typing import Any

import bencode

from a_la_mode import codec
from a_la_mode.errors import AlamodeError, FileFormatError, FileTooLargeError, IntegrityError
from a_la_mode.files import max_file_bytes, max_file_values, read_limited
from a_la_mode.graph import topological_order
from a_la_mode.ids import DIGEST_KEY, file_digest, id_of
from a_la_mode.names import check_name
from a_la_mode.pipeline import Pipeline, PipelineTask
from a_la_mode.values import freeze_owned

Source = bytes | bytearray | memoryview | str | PathLike


def load(source: Source, *, max_bytes: int | None = None, require_digest: bool = True) -> Pipeline:
    """Read and verify a pipeline from a path or from its bytes.

    Files written by ``Dag.save``/``alamode encode`` carry a digest of their task names
    and meta; ``require_digest=False`` also accepts SPEC-conforming files from other
    encoders, whose names and meta then go unchecked (their IDs are always checked).

    >>> from a_la_mode import Dag
    >>> dag = Dag({})
    >>> _ = dag.task("hello", {"command": "echo hello"})
    >>> load(dag.bencode())["hello"].short_id
    'c1bf9329d84a'
    """
    limit = max_file_bytes() if max_bytes is None else max_bytes
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), None
        if len(data) > limit:
            raise FileTooLargeError(f"{len(data)} bytes, over the limit of {limit}")
    else:
        data, name = read_limited(source, limit), str(source)
    try:
        return parse(data, name, require_digest=require_digest)
    except AlamodeError as exc:
        if name:
            exc.in_file(name)
        raise


#: How much of a file ``peek_meta`` reads first: the meta of every usual file.
META_HEAD = 4096
_META_START = b"d4:metad"


def peek_meta(path: str | PathLike) -> dict[str, Any]:
    """The meta of the file at ``path``, unverified, reading only as far as its end.

    An encoded file is a dictionary whose keys sort ``meta`` first, so a file's meta
    (its ``dag_id``, ...) is at its start: asking many files for theirs costs a short
    read each, not a load. Raises FileFormatError for a file that does not start as
    an encoded file does."""
    # os.read, not a file object: a folder's parse asks every file for its meta.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise FileFormatError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    try:
        data = os.read(fd, META_HEAD)
        if not data.startswith(_META_START):
            raise FileFormatError(
                "not an a-la-mode file (it does not start with its meta)", file=str(path)
            )
        try:
            return codec.decode_dict_at(data, len(_META_START) - 1, max_file_values())
        except codec.TooManyValues:
            raise
        except (IndexError, ValueError, bencode.BencodeDecodeError):
            if len(data) < META_HEAD:
                raise
        # A meta longer than the head (long docs): the rest of the file, bounded.
        rest = os.fstat(fd).st_size - len(data)
        if rest > max_file_bytes():
            raise FileTooLargeError(f"file is over the limit of {max_file_bytes()} bytes")
        data += os.read(fd, rest)
        return codec.decode_dict_at(data, len(_META_START) - 1, max_file_values())
    except codec.TooManyValues as exc:
        raise _too_many(exc).in_file(str(path)) from None
    except (IndexError, ValueError, bencode.BencodeDecodeError):
        raise FileFormatError("not a bencoded file, or truncated", file=str(path)) from None
    except OSError as exc:
        raise FileFormatError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    finally:
        os.close(fd)


def parse(data: bytes, name: str | None = None, *, require_digest: bool = True) -> Pipeline:
    """Verify decoded bytes; ``name`` only labels the result."""
    # The decoded tree and what is built from it hold no reference cycles, yet a large
    # file's many containers would trigger full collections that re-walk all of them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(data, name, require_digest)
    finally:
        if collecting:
            gc.enable()


def _parse(data: bytes, name: str | None, require_digest: bool) -> Pipeline:
    top, preimage = _decode(data)
    meta, records = _split(top)
    bodies = {task: _body(task, record) for task, record in records.items()}
    order = topological_order({task: body["inputs"] for task, body in bodies.items()})
    outputs: dict[str, str] = {}
    tasks = {}
    for task in order:
        body = bodies[task]
        given = preimage(task)
        if given is None:
            given = bencode.encode(body)
        outputs[task] = _verify(task, body, given, records[task]["output"], outputs)
        inputs = MappingProxyType(body.pop("inputs"))
        tasks[task] = PipelineTask(task, freeze_owned(body), inputs, outputs[task])
    _verify_digest(meta, {task: outputs[task] for task in records}, require_digest)
    plain_meta = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    return Pipeline(freeze_owned(plain_meta), MappingProxyType(tasks), name)


def _too_many(exc: codec.TooManyValues) -> FileTooLargeError:
    return FileTooLargeError(
        f"file holds {exc}, over the limit (set ALAMODE_MAX_FILE_VALUES to raise it)"
    )


def _decode(data: bytes) -> tuple[Any, Callable[[str], bytes | None]]:
    try:
        return codec.decode_file(data, max_file_values())
    except codec.TooManyValues as exc:
        raise _too_many(exc) from None
    except bencode.BencodeDecodeError as exc:
        raise FileFormatError(f"not a bencoded file, or truncated ({exc})") from None


def _split(top: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if not isinstance(top, Mapping) or set(top) != {"meta", "tasks"}:
        shape = sorted(top) if isinstance(top, Mapping) else type(top).__name__
        raise FileFormatError(
            f"top level must be a dictionary with keys 'meta' and 'tasks', found {shape}"
        )
    for key in ("meta", "tasks"):
        if not isinstance(top[key], Mapping):
            raise FileFormatError(f"{key!r} must be a dictionary", key=key)
    return top["meta"], top["tasks"]


def _body(task: str, record: Any) -> dict[str, Any]:
    """The task's preimage (its record without ``output``), checked for shape: the one
    copy of the record the loader makes."""
    check_name(task)
    if not isinstance(record, Mapping):
        raise FileFormatError("task record must be a dictionary", task=task)
    inputs = record.get("inputs")
    if not isinstance(inputs, Mapping):
        raise FileFormatError("'inputs' missing or not a dictionary", task=task)
    if not isinstance(record.get("output"), str):
        raise FileFormatError("'output' missing or not a string", task=task)
    for dep, value in inputs.items():
        if not isinstance(value, str):
            raise FileFormatError("input ID is not a string", task=task, key=f"inputs.{dep}")
        if dep == task:
            raise IntegrityError("the task is listed among its own inputs", task=task)
    body = dict(record)
    del body["output"]
    return body


def _verify(
    task: str, body: Mapping[str, Any], preimage: bytes, output: str, outputs: Mapping[str, str]
) -> str:
    """The task's output ID, checked: its inputs' IDs against their tasks' outputs, and
    ``output`` against the ID of ``preimage`` (the bencoded ``body``)."""
    for dep, value in body["inputs"].items():
        if value != outputs[dep]:
            raise IntegrityError(
                f"input {dep!r} carries ID {value[:12]}... but task {dep!r} outputs "
                f"{outputs[dep][:12]}... (tampered or corrupted)",
                task=task,
            )
    actual = id_of(preimage)
    if actual != output:
        raise IntegrityError(
            "output ID does not match the task's spec and inputs (tampered or corrupted)",
            task=task,
        )
    return actual


def _verify_digest(meta: Mapping[str, Any], outputs: Mapping[str, str], required: bool) -> None:
    if DIGEST_KEY not in meta:
        # Absence is an error by default: a corrupted digest key would otherwise pass.
        if required:
            raise IntegrityError(
                f"file carries no {DIGEST_KEY!r}: re-encode it with 'alamode encode', or "
                "load it with require_digest=False to accept files of other encoders",
                key="meta",
            )
        return
    if meta[DIGEST_KEY] != file_digest(meta, outputs):
        raise IntegrityError(
            "file digest does not match its task names and meta (tampered or corrupted)",
            key=f"meta.{DIGEST_KEY}",
        )
