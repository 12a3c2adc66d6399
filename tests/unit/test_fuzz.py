"""Fuzzed, truncated and tampered files: every one is refused with an AlamodeError,
never another exception, and never accepted."""

from __future__ import annotations

import random

import pytest
from bencodepy.exceptions import BencodeDecodeError

from a_la_mode import AlamodeError, Dag, load
from a_la_mode.codec import decode

ROUNDS = 10_000


def samples() -> list[bytes]:
    small = Dag({"schedule": "@daily", "retries": 2, "tags": ["a", "b"]})
    a = small.task("a", {"command": "echo a", "env": {"N": 10, "RAW": b"\xff\x00"}})
    small.task("b", {"command": "echo b", "deep": [[1, -2], {"k": "v"}]}).add_dep(a)
    wide = Dag({"dag_id": "wide"})
    root = wide.task("root", {"command": "x"})
    for i in range(12):
        wide.task(f"leaf{i}", {"command": f"y {i}", "n": i * 1000}).add_dep(root)
    return [small.bencode(), wide.bencode()]


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    position = rng.randrange(len(data))
    kind = rng.randrange(7)
    if kind == 0:  # change one byte
        return data[:position] + bytes([rng.randrange(256)]) + data[position + 1 :]
    if kind == 1:  # insert bytes, often bencode's own characters
        extra = bytes(rng.choice(b"0123456789ie:dl+- ") for _ in range(rng.randint(1, 3)))
        return data[:position] + extra + data[position:]
    if kind == 2:  # delete a run of bytes
        return data[:position] + data[position + rng.randint(1, 8) :]
    if kind == 3:  # truncate
        return data[:position]
    if kind == 4:  # splice two files
        return data[:position] + other[rng.randrange(len(other)) :]
    if kind == 5:  # duplicate a chunk
        chunk = data[position : position + rng.randint(1, 16)]
        return data[:position] + chunk + data[position:]
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))  # noise


def test_ten_thousand_damaged_files_are_all_refused_with_alamode_errors():
    rng = random.Random(20261125)
    files = samples()
    refused = 0
    for _ in range(ROUNDS):
        data, other = rng.sample(files, 2)
        damaged = mutate(rng, data, other)
        if damaged in files:
            continue
        try:
            load(damaged)
        except AlamodeError:
            refused += 1
            continue
        raise AssertionError(f"accepted a damaged file: {damaged!r}")
    assert refused > ROUNDS * 0.99


@pytest.mark.parametrize(
    "data",
    [
        b"i+5e",
        b"i 5e",
        b"i05e",
        b"i-0e",
        b"5 :abcde",
        b"05:abcde",
        b"10:abc",
        b"d1:bi1e1:ai2ee",
        b"d1:ai1e1:ai2ee",
    ],
)
def test_non_canonical_bencode_is_refused(data):
    with pytest.raises(BencodeDecodeError, match="not a valid bencoded string"):
        decode(data)


def test_canonical_bencode_reads_as_bencode_py_writes_it():
    assert decode(b"d1:ai-12e1:bl0:3:\xff\x00xee") == {"a": -12, "b": ["", b"\xff\x00x"]}
