"""Reading bencode strictly: one byte sequence per value.

bencode.py's decoder is lenient: it reads ``i+5e``, ``i 5e`` and ``5 :abcde`` as 5 and
"abcde", and sorts dictionary keys it finds out of order. A file changed that way would
decode to the same values and pass every ID check, so the loader uses this decoder,
which refuses anything but the canonical form bencode.py itself writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bencodepy.decoder import BencodeDecoder
from bencodepy.exceptions import BencodeDecodeError

_LENGTH = re.compile(rb"0|[1-9][0-9]*")
_INTEGER = re.compile(rb"0|-?[1-9][0-9]*")


class StrictDecoder(BencodeDecoder):
    """Canonical bencode only: integers and lengths without signs, spaces or leading
    zeros, strings that fit in the data, dictionary keys strictly increasing."""

    def __init__(self) -> None:
        super().__init__(encoding="utf-8", encoding_fallback="value")

    def decode_int(self, x: bytes, f: int, **kwargs: Any) -> tuple[int, int]:
        f += 1
        end = x.index(b"e", f)
        if not _INTEGER.fullmatch(x, f, end):
            raise ValueError("not a canonical integer")
        return int(x[f:end]), end + 1

    def decode_string(self, x: bytes, f: int, kind: str = "value", **kwargs: Any):
        colon = x.index(b":", f)
        if not _LENGTH.fullmatch(x, f, colon):
            raise ValueError("not a canonical length")
        start = colon + 1
        end = start + int(x[f:colon])
        if end > len(x):
            raise ValueError("string runs past the end")
        raw = x[start:end]
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            if kind == "key":
                raise
            return bytes(raw), end

    def decode_dict(self, x: bytes, f: int, **kwargs: Any) -> tuple[dict[str, Any], int]:
        depth = kwargs.get("depth", 0)
        if depth > self.max_depth:
            raise BencodeDecodeError("exceeded maximum depth")
        start = f
        f += 1
        result: dict[str, Any] = {}
        previous = None
        while x[f : f + 1] != b"e":
            entry = f
            key, f = self.decode_string(x, f, kind="key")
            # Keys sort as their UTF-8 bytes do, which is code point order.
            if previous is not None and key <= previous:
                raise ValueError("dictionary keys out of order or repeated")
            previous = key
            value = f
            result[key], f = self.decode_func[x[f : f + 1]](x, f, depth=depth + 1)
            if depth < 3:
                self.note(depth, start, key, (entry, value, f))
        return result, f + 1

    def note(self, depth: int, start: int, key: str, span: tuple[int, int, int]) -> None:
        """Where the entry ``key`` of the dictionary at offset ``start`` and ``depth``
        lies: (its key's offset, its value's offset, its end)."""


class SpanDecoder(StrictDecoder):
    """A StrictDecoder that notes where the entries of the dictionaries of the top
    three levels lie (``spans``: dictionary offset -> key -> span)."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: dict[int, dict[str, tuple[int, int, int]]] = {}

    def note(self, depth: int, start: int, key: str, span: tuple[int, int, int]) -> None:
        self.spans.setdefault(start, {})[key] = span


_DECODER = StrictDecoder()


def decode(data: bytes) -> Any:
    """Decode canonical bencode; raises bencode.py's BencodeDecodeError otherwise."""
    return _DECODER.decode(data)


def decode_file(data: bytes) -> tuple[Any, Callable[[str], bytes | None]]:
    """Decode an encoded pipeline file, and say what each task's preimage is.

    The decoder accepts only the canonical form, so a task's record in ``data`` is
    byte for byte what encoding the decoded record gives: its preimage (the record
    without its ``output`` entry) is those bytes less that entry's, and verifying an ID
    needs no encoding again. The second value maps a task name to its preimage (None
    when the file is not shaped so: the caller then checks the shape and encodes)."""
    decoder = SpanDecoder()
    top = decoder.decode(data)
    spans = decoder.spans
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
    return _DECODER.decode_dict(data, start)[0]
