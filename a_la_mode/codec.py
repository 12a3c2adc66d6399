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

Decoding is bounded by a budget of values, not only by the file's size: each decoded
value is a Python object of 30 to 100 bytes, so two bytes of ``le`` become some 70
bytes of memory and a microsecond of work, and a file within the size limit made of
nothing but empty lists would take about 36 times its size before any ID is checked.
A file holding more than ``max_values`` values (every string, dictionary keys
included, integer, list and dictionary; ``MAX_VALUES`` unless the caller says
otherwise) is refused with ``TooManyValues`` before any is built. Real files need
about 12 values a task (a 10,000-task benchmark file: 2.9 MB, 119,485 values; a
100,000-task one: 29 MB, 1.2 million values, decoded in 210 MB), so the default of 4
million leaves room for 100,000 tasks with specs three times as rich, while a hostile
file costs at most what a real file of that many values does: 300 MB for empty
lists, 650 MB for empty task records (each has its entries' places noted), a few
seconds.

Checking costs next to nothing. Each value has two bytes of its own and one ``:`` (a
string) or ``e`` (an integer, a closed container), but for the containers open when
the decoder stops: files up to twice the budget in bytes (8 MB, some 28,000 tasks)
are not looked at, and two ``bytes.count`` calls settle larger ones that cannot hold
more. Only the others are walked head by head, without building anything, up to the
budget.
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
#: The values a decoded file may hold by default (see the module's docstring).
MAX_VALUES = 4_000_000
#: Dictionaries nested less deeply than this have their entries' places noted
#: (``Spans``): the top level, ``meta`` and ``tasks``, and each task's record.
NOTED_DEPTH = 3

#: dictionary offset -> key -> (the entry's offset, its value's offset, its end)
Spans = dict[int, dict[str, tuple[int, int, int]]]


class _Refused(ValueError):
    """Not canonical bencode (turned into BencodeDecodeError by the callers)."""


class TooManyValues(BencodeDecodeError):
    """Data holding more values than the budget: refused before any is decoded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"more than {limit} values (strings, integers, lists and dictionaries)")


def _check_budget(data: bytes, start: int, limit: int) -> None:
    """Raise TooManyValues if the value at ``start`` holds more than ``limit`` values.

    Data this does not read as bencode is left for the decoder to refuse: up to that
    point both read the same heads, so the decoder never builds more than is counted."""
    # Each value has two bytes of its own, but for the at most MAX_DEPTH + 1 containers
    # open when the decoder stops (their 'e' unread): files up to twice the budget in
    # bytes need no look at all. And each value has its own ':' (a string) or 'e' (an
    # integer, a closed container).
    opened = MAX_DEPTH + 1
    if (len(data) - start + opened) // 2 <= limit:
        return
    if data.count(b":", start) + data.count(b"e", start) + opened <= limit:
        return
    match = _HEAD.match
    pos, depth, count, size = start, 0, 0, len(data)
    while pos < size:
        if data[pos] == _END:
            pos, depth = pos + 1, depth - 1
        else:
            head = match(data, pos)
            if head is None:
                return
            count += 1
            if count > limit:
                raise TooManyValues(limit)
            pos = head.end()
            if head.lastindex == 1:
                pos += int(head[1])
            elif head.lastindex is None:  # a list or dictionary opens
                depth += 1
        if depth <= 0:
            return


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


def _decoded(data: bytes, spans: Spans | None, max_values: int) -> Any:
    """All of ``data`` as one value; BencodeDecodeError otherwise."""
    _check_budget(data, 0, max_values)
    try:
        value, end = _value(data, 0, 0, spans)
    # _Refused and UnicodeDecodeError included; RecursionError where the caller's stack
    # is already deep (MAX_DEPTH bounds the nesting, not the stack below it).
    except (IndexError, ValueError, RecursionError) as exc:
        raise BencodeDecodeError("not a valid bencoded string") from exc
    if end != len(data):
        raise BencodeDecodeError("invalid bencoded value (data after valid prefix)")
    return value


def decode(data: bytes, max_values: int = MAX_VALUES) -> Any:
    """Decode canonical bencode; raises bencode.py's BencodeDecodeError otherwise
    (TooManyValues for data holding more than ``max_values`` values)."""
    return _decoded(data, None, max_values)


def decode_file(
    data: bytes, max_values: int = MAX_VALUES
) -> tuple[Any, Callable[[str], bytes | None]]:
    """Decode an encoded pipeline file, and say what each task's preimage is.

    The decoder accepts only the canonical form, so a task's record in ``data`` is
    byte for byte what encoding the decoded record gives: its preimage (the record
    without its ``output`` entry) is those bytes less that entry's, and verifying an ID
    needs no encoding again. The second value maps a task name to its preimage (None
    when the file is not shaped so: the caller then checks the shape and encodes).
    Raises BencodeDecodeError as ``decode`` does."""
    spans: Spans = {}
    top = _decoded(data, spans, max_values)
    tasks = spans.get(0, {}).get("tasks")

    def preimage(task: str) -> bytes | None:
        record = spans.get(tasks[1], {}).get(task) if tasks else None
        output = spans.get(record[1], {}).get("output") if record else None
        if not output:
            return None
        return data[record[1] : output[0]] + data[output[2] : record[2]]

    return top, preimage


def decode_dict_at(data: bytes, start: int, max_values: int = MAX_VALUES) -> dict[str, Any]:
    """The dictionary that starts at offset ``start`` of ``data`` (what follows it is
    not read); raises ValueError, IndexError or BencodeDecodeError if it is not one
    (TooManyValues if it holds more than ``max_values`` values)."""
    if data[start : start + 1] != b"d":
        raise ValueError("not a dictionary")
    _check_budget(data, start, max_values)
    try:
        return _dict(data, start, 0, None)[0]
    except RecursionError as exc:
        raise ValueError("nested too deeply for this stack") from exc
