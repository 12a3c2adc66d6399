"""The decoder's budget of values: a file made of many tiny values (two bytes of ``le``
become some 70 bytes of Python objects) is refused before it is decoded, not after it
has taken a worker's memory; real files decode exactly as before."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from bencodepy.exceptions import BencodeDecodeError

from a_la_mode import Dag, FileFormatError, FileTooLargeError, codec, load
from a_la_mode.load import peek_meta


def values_in(value: Any) -> int:
    """Every string (keys included), integer, list and dictionary in ``value``."""
    if isinstance(value, dict):
        return 1 + len(value) + sum(values_in(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(values_in(item) for item in value)
    return 1


def empty_lists(count: int) -> bytes:
    """A file shaped like a pipeline whose one task's command is ``count`` empty lists."""
    return b"d4:metade5:tasksd1:td7:commandl" + b"le" * count + b"eeee"


def pipeline() -> Dag:
    dag = Dag({"dag_id": "budget", "doc": "colons: and e's in text count as no values"})
    root = dag.task("root", {"command": "echo e:e:e", "env": {"N": 10, "RAW": b"\xff"}})
    for i in range(20):
        dag.task(f"t{i}", {"command": f"echo {i}", "args": ["-e", i, []]}).add_dep(root)
    return dag


def test_a_file_of_empty_lists_is_refused_before_anything_is_decoded(tmp_path, monkeypatch):
    path = tmp_path / "bad.alamode"
    path.write_bytes(empty_lists(1_000_000))  # 2 MB: some 70 MB once decoded
    monkeypatch.setenv("ALAMODE_MAX_FILE_VALUES", "1000")
    tracemalloc.start()
    try:
        with pytest.raises(FileTooLargeError) as raised:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(raised.value) == (
        f"{path}: file holds more than 1000 values (strings, integers, lists and "
        "dictionaries), over the limit (set ALAMODE_MAX_FILE_VALUES to raise it)"
    )
    assert peak < 3 * len(path.read_bytes())  # the file's bytes, no decoded values


def test_the_budget_counts_every_value_exactly(monkeypatch):
    """At the budget a file loads; one value over it, it is refused (text holding ':'
    and 'e', which the quick bound counts, does not count)."""
    data = pipeline().bencode()
    count = values_in(codec.decode(data))
    assert codec.decode(data, max_values=count) == codec.decode(data)
    with pytest.raises(codec.TooManyValues, match=rf"more than {count - 1} values"):
        codec.decode(data, max_values=count - 1)
    monkeypatch.setenv("ALAMODE_MAX_FILE_VALUES", str(count))
    assert len(load(data)) == 21
    monkeypatch.setenv("ALAMODE_MAX_FILE_VALUES", str(count - 1))
    with pytest.raises(FileTooLargeError, match=r"file holds more than"):
        load(data)


def test_the_default_budget_takes_a_large_pipeline():
    dag = Dag({"dag_id": "wide"})
    root = dag.task("root", {"command": "x"})
    for i in range(5000):
        dag.task(f"t{i:05d}", {"command": f"echo {i}", "args": ["-n", i]}).add_dep(root)
    assert len(load(dag.bencode())) == 5001


def test_a_meta_over_the_budget_is_refused_naming_the_file(tmp_path, monkeypatch):
    """A dags folder's parse asks every file for its meta: that read is bounded too."""
    path = tmp_path / "bad.alamode"
    path.write_bytes(b"d4:metad4:docsl" + b"le" * 10_000 + b"ee5:tasksdee")
    monkeypatch.setenv("ALAMODE_MAX_FILE_VALUES", "1000")
    with pytest.raises(FileTooLargeError, match=r"bad\.alamode: file holds more than 1000"):
        peek_meta(path)


def test_what_follows_a_dictionary_read_alone_is_not_counted():
    data = b"d1:ai1ee" + b"le" * 5000
    assert codec.decode_dict_at(data, 0, max_values=3) == {"a": 1}
    with pytest.raises(codec.TooManyValues):
        codec.decode_dict_at(data, 0, max_values=2)


@pytest.mark.parametrize(
    ("data", "budget"),
    [
        (b"l" * 150 + b"e" * 150, 150),  # nested too deeply
        (b"l" + b"le" * 50 + b"9999:ab", 52),  # a string runs past the end
        (b"d1:bi1e1:ai2ee", 5),  # keys out of order
        (b"l" + b"le" * 50 + b"x" + b"le" * 50 + b"e", 51),  # not a value
    ],
)
def test_data_that_is_no_bencode_is_refused_as_such_within_the_budget(data, budget):
    """Such data is walked to its mistake without counting over the budget, and the
    decoder reports the mistake."""
    with pytest.raises(BencodeDecodeError) as raised:
        codec.decode(data, max_values=budget)
    assert not isinstance(raised.value, codec.TooManyValues)


def test_the_budget_setting_must_be_a_number(monkeypatch):
    monkeypatch.setenv("ALAMODE_MAX_FILE_VALUES", "lots")
    with pytest.raises(FileFormatError, match=r"ALAMODE_MAX_FILE_VALUES must be a number"):
        load(pipeline().bencode())


def test_long_text_is_not_many_values(monkeypatch):
    """Bytes are not values: a file far larger than the budget, with few values, loads."""
    dag = Dag({"dag_id": "docs", "doc": "x" * 100_000})
    dag.task("a", {"command": "echo a", "script": "y" * 100_000})
    monkeypatch.setenv("ALAMODE_MAX_FILE_VALUES", "100")
    assert len(dag.bencode()) > 200_000
    assert load(dag.bencode())["a"].spec["script"] == "y" * 100_000
