"""Output IDs: the SPEC rule, and the file digest that guards names and meta.

``output = sha256(bencode(spec + {"inputs": inputs})).hexdigest()`` with bencode as the
bencode.py package writes it (dictionary keys sorted). These functions are pure: same
arguments, same ID, on every engine.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import bencode

DIGEST_KEY = "alamode_digest"
SHORT = 12
_OUTPUT_ID = re.compile(r"[0-9a-f]{64}")


def is_output_id(value: object) -> bool:
    """Whether ``value`` looks like an output ID: 64 lower-case hex digits. The one
    test every caller uses (IDs become paths in stores, so ``../x`` must never pass).

    >>> is_output_id("ab" * 32), is_output_id("AB" * 32), is_output_id("../etc")
    (True, False, False)
    """
    return isinstance(value, str) and _OUTPUT_ID.fullmatch(value) is not None


def preimage(spec: Mapping[str, Any], inputs: Mapping[str, str]) -> bytes:
    """The bytes an output ID hashes: the spec with its ``inputs`` added, bencoded.

    >>> preimage({"command": "true"}, {})
    b'd7:command4:true6:inputsdee'
    """
    record = dict(spec)
    record["inputs"] = dict(inputs)
    return bencode.encode(record)


def id_of(preimage: bytes) -> str:
    """The ID a preimage hashes to: the one rule every ID (output, partition) follows.

    >>> id_of(b"d7:command4:true6:inputsdee")[:12]
    'eb543f046a79'
    """
    return hashlib.sha256(preimage).hexdigest()


def output_id(spec: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """The output ID of a task with this spec and these inputs (name -> output ID).

    >>> output_id({"image": "collage", "sha": "1qe34", "command": "python dl_images.py"}, {})
    '6075b3951568e2f31df204a59eb92bbb17d84e6b49f1275216bc0b6deb0e223d'
    """
    return id_of(preimage(spec, inputs))


def file_digest(meta: Mapping[str, Any], outputs: Mapping[str, str]) -> str:
    """The digest a saved file carries in ``meta[DIGEST_KEY]``.

    Output IDs already cover every spec and input; this covers what they leave out (task
    names and meta), so that any change to a saved file is detected on load. It hashes
    bencode({"meta": meta without the digest, "outputs": {name: output ID}}).
    """
    plain_meta = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    payload = bencode.encode({"meta": plain_meta, "outputs": dict(outputs)})
    return hashlib.sha256(payload).hexdigest()


def short(output: str) -> str:
    """The short form of an output ID shown to people (like a short git sha)."""
    return output[:SHORT]
