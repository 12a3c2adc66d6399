"""Reading bencode strictly: one byte sequence per value.

bencode.py's decoder is lenient: it reads ``i+5e``, ``i 5e`` and ``5 :abcde`` as 5 and
"abcde", and sorts dictionary keys it finds out of order. A file changed that way would
decode to the same values and pass every ID check, so the loader uses this decoder,
which refuses anything but the canonical form bencode.py itself writes: integers and
lengths without signs, spaces or leading zeros, strings that fit in the data,
dictionary keys strictly increasing.

Every DAG file's parse decodes its encoded file, so this is written for speed: one
regular expression match reads each value's head (a string's length, an integer, or
the start of a list or dictionary), where bencode.py's decoder takes a lookup, a
search and a conversion per value. Values decode as bencode.py's do: text strings as
``str``, others (not UTF-8) as ``bytes``; dictionary keys must be text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bencodepy.exceptions import BencodeDecodeError

#: A value's head: a string's length and colon (group 1), a whole integer (group 2),
#: or the ``l``/``d`` that opens a list or dictionary.
_HEAD = re.compile(rb"(0|[1-9][0-9]*):|i(0|-?[1-9][0-9]*)e|[ld]")
_LIST, _END = ord("l"), ord("e")
#: Nesting refused beyond this (bencode.py's limit): deep garbage is an error, not a
#: RecursionError.
MAX_DEPTH = 100
#: Dictionaries nested less deeply than this have their entries' places noted
#: (``Spans``): the top level, ``meta`` and ``tasks``, and each task's record.
NOTED_DEPTH = 3

#: dictionary offset -> key -> (the entry's offset, its value's offset, its end)
Spans = dict[int, dict[str, tuple[int, int, int]]]


class _Refused(ValueError):
    """Not canonical bencode (turned into BencodeDecodeError by the callers)."""


def _value(data: bytes, pos: int, depth: int, spans: Spans | None) -> tuple[Any, int]:
    """The value at ``pos`` (nested ``depth`` deep) and the offset just past it."""
    head = _HEAD.match(data, pos)
    if head is None:
        raise _Refused("not a canonical value")
    return _read(data, head, depth, spans)


def _read(data: bytes, head: re.Match, depth: int, spans: Spans | None) -> tuple[Any, int]:
    """The value whose head ``head`` matched, and the offset just past it."""
    kind, end = head.lastindex, head.end()
    if kind == 1:
        stop = end + int(head[1])
        if stop > len(data):
            raise _Refused("string runs past the end")
        raw = data[end:stop]
        try:
            return raw.decode(), stop
        except UnicodeDecodeError:
            return raw, stop
    if kind == 2:
        return int(head[2]), end
    if depth > MAX_DEPTH:
        raise BencodeDecodeError("exceeded maximum depth")
    if data[end - 1] == _LIST:
        return _list(data, end, depth, spans)
    return _dict(data, end - 1, depth, spans)


def _list(data: bytes, end: int, depth: int, spans: Spans | None) -> tuple[list[Any], int]:
    """The items of the list that starts before ``end``, and the offset past it."""
    items = []
    match = _HEAD.match
    while data[end] != _END:
        head = match(data, end)
        if head is None:
            raise _Refused("not a canonical value")
        item, end = _read(data, head, depth + 1, spans)
        items.append(item)
    return items, end + 1


def _dict(data: bytes, pos: int, depth: int, spans: Spans | None) -> tuple[dict[str, Any], int]:
    """The dictionary at ``pos`` (its ``d``) and the offset just past it."""
    noted = spans.setdefault(pos, {}) if spans is not None and depth < NOTED_DEPTH else None
    result: dict[str, Any] = {}
    previous = None
    match = _HEAD.match
    end = pos + 1
    while data[end] != _END:
        entry = end
        head = match(data, end)
        if head is None or head.lastindex != 1:
            raise _Refused("a dictionary key must be a string")
        start = head.end()
        end = start + int(head[1])
        if end > len(data):
            raise _Refused("string runs past the end")
        raw = data[start:end]
        # Keys sort as their bytes do; for UTF-8 that is code point order too.
        if previous is not None and raw <= previous:
            raise _Refused("dictionary keys out of order or repeated")
        previous = raw
        key = raw.decode()  # a key that is not UTF-8 raises UnicodeDecodeError
        value = end
        head = match(data, end)
        if head is None:
            raise _Refused("not a canonical value")
        result[key], end = _read(data, head, depth + 1, spans)
        if noted is not None:
            noted[key] = (entry, value, end)
    return result, end + 1


def _decoded(data: bytes, spans: Spans | None) -> Any:
    """All of ``data`` as one value; BencodeDecodeError otherwise."""
    try:
        value, end = _value(data, 0, 0, spans)
    # _Refused and UnicodeDecodeError included; RecursionError where the caller's stack
    # is already deep (MAX_DEPTH bounds the nesting, not the stack below it).
    except (IndexError, ValueError, RecursionError) as exc:
        raise BencodeDecodeError("not a valid bencoded string") from exc
    if end != len(data):
        raise BencodeDecodeError("invalid bencoded value (data after valid prefix)")
    return value


def decode(data: bytes) -> Any:
    """Decode canonical bencode; raises bencode.py's BencodeDecodeError otherwise."""
    return _decoded(data, None)


def decode_file(data: bytes) -> tuple[Any, Callable[[str], bytes | None]]:
    """Decode an encoded pipeline file, and say what each task's preimage is.

    The decoder accepts only the canonical form, so a task's record in ``data`` is
    byte for byte what encoding the decoded record gives: its preimage (the record
    without its ``output`` entry) is those bytes less that entry's, and verifying an ID
    needs no encoding again. The second value maps a task name to its preimage (None
    when the file is not shaped so: the caller then checks the shape and encodes)."""
    spans: Spans = {}
    top = _decoded(data, spans)
    tasks = spans.get(0, {}).get("tasks")

    def preimage(task: str) -> bytes | None:
        record = spans.get(tasks[1], {}).get(task) if tasks else None
        output = spans.get(record[1], {}).get("output") if record else None
        if not output:
            return None
        return data[record[1] : output[0]] + data[output[2] : record[2]]

    return top, preimage


def decode_dict_at(data: bytes, start: int) -> dict[str, Any]:
    """The dictionary that starts at offset ``start`` of ``data`` (what follows it is
    not read); raises ValueError, IndexError or BencodeDecodeError if it is not one."""
    if data[start : start + 1] != b"d":
        raise ValueError("not a dictionary")
    try:
        return _dict(data, start, 0, None)[0]
    except RecursionError as exc:
        raise ValueError("nested too deeply for this stack") from exc
