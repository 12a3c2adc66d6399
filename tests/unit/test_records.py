"""The success record refuses what it cannot vouch for, and reads back as written."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from a_la_mode.partitions import partition_id
from alamode_airflow.manifests import ManifestEntry, manifest_digest
from alamode_airflow.records import SuccessRecord
from tests.unit.test_store import OUTPUT, PREIMAGE

START, END = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def record(**changes) -> SuccessRecord:
    base = {
        "output_id": OUTPUT,
        "dag_id": "d",
        "task": "t",
        "run_id": "r",
        "try_number": 1,
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-01T00:00:01+00:00",
        "duration_s": 1.0,
        "command": "true",
        "image": None,
        "sha": None,
        "inputs": {"up": "ab" * 32},
        "preimage_b64": base64.b64encode(PREIMAGE).decode(),
        "host": "h",
        "input_generations": {"up": 2},
    }
    return SuccessRecord(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_generations": {"other": 0}}, "generations of inputs it did not read"),
        ({"generation": -1}, "not negative"),
        ({"input_generations": {"up": -1}}, "not negative"),
        ({"input_digests": {"other": "ab" * 32}}, "digests of inputs it did not read"),
        ({"input_digests": {"up": "not a digest"}}, "not sha256 digests"),
        ({"data_path": "../elsewhere"}, "leaves its generation"),
        ({"data_path": "/data"}, "leaves its generation"),
        ({"interval": (START, END)}, "file ID and interval do not give its output ID"),
    ],
)
def test_a_record_that_cannot_be_right_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        record(**changes)


def test_a_partitioned_record_reads_back_equal():
    partitioned = record(
        output_id=partition_id(OUTPUT, START, END), file_output_id=OUTPUT, interval=(START, END)
    )
    assert partitioned.preimage_id == OUTPUT
    assert SuccessRecord.loads(partitioned.dumps()) == partitioned


def test_stale_means_an_input_is_now_another_generation():
    made = record()
    assert made.read_generation("up") == 2
    assert made.stale_reason({"up": record(generation=2)}) is None
    assert made.stale_reason({"up": record(generation=3)}) == "input up is now generation 3"
    assert made.stale_reason({"up": None}) == "input up is being computed again"
    # Before generations were recorded, a record read generation 0 of each input.
    old = replace(made, input_generations={})
    assert old.stale_reason({"up": record(generation=0)}) is None
    assert old.stale_reason({"up": record(generation=1)}) == "input up is now generation 1"


def test_stale_means_an_input_generation_now_holds_other_files():
    read = record(generation=2, manifest=(ManifestEntry("out.txt", 2, "aa" * 32),))
    other = replace(read, manifest=(ManifestEntry("out.txt", 2, "bb" * 32),))
    assert read.digest == manifest_digest(read.manifest) != other.digest
    made = record(input_digests={"up": read.digest})
    assert made.stale_reason({"up": read}) is None
    assert made.stale_reason({"up": other}) == (
        "input up generation 2 now holds other files than the ones read (it was removed and "
        "made again)"
    )
    # A record before digests (format 2) compares generations alone.
    assert record().stale_reason({"up": other}) is None
    assert SuccessRecord.loads(made.dumps()) == made


def test_records_are_written_in_one_canonical_form():
    text = record().dumps()
    assert text == SuccessRecord.loads(text).dumps()
    assert text.splitlines()[1].startswith(' "command"')  # sorted keys, indent 1
