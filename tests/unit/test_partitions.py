"""The per-interval ID rule and which tasks it applies to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from a_la_mode import AlamodeError, Dag, SpecValueError, load
from a_la_mode.partitions import partition_id, partitioned, run_outputs, timestamp
from alamode_airflow.runs import RunInfo, requested_rebuilds

DOWNLOAD = "6075b3951568e2f31df204a59eb92bbb17d84e6b49f1275216bc0b6deb0e223d"


def test_partition_id_is_pinned():
    # sha256 of b"d8:intervald3:end20:2026-01-02T00:00:00Z5:start20:2026-01-01T00:00:00Z"
    #           b"e6:output64:" + DOWNLOAD + b"e", bencoded by hand.
    assert (
        partition_id(DOWNLOAD, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
        == "3507ec2b7c6922f82b583fe7117cef2d8a9360f92914698d0865aa07c0439a34"
    )


def test_timestamps_are_utc_whatever_the_zone():
    paris = timezone(timedelta(hours=1))
    assert timestamp(datetime(2026, 1, 1, 1, 0, tzinfo=paris)) == "2026-01-01T00:00:00Z"
    with pytest.raises(ValueError, match="time zone"):
        timestamp(datetime(2026, 1, 1))


def test_descendants_of_a_partitioned_task_are_partitioned(collage):
    collage.download_images.spec["partition"] = "interval"
    collage.task("legend", {"command": "echo"})
    parts = partitioned(load(collage.bencode()))
    assert parts == {"download_images", "blur", "edge_enhance", "collage"}


def test_meta_partitions_every_task(collage):
    collage.meta["partition"] = "interval"
    collage.task("legend", {"command": "echo"})
    assert "legend" in partitioned(load(collage.bencode()))


def test_partition_value_is_checked():
    dag = Dag({})
    dag.task("a", {"partition": "daily"})
    with pytest.raises(SpecValueError, match=r"key 'tasks.a.partition': must be 'interval'"):
        partitioned(load(dag.bencode()))


def test_run_outputs_change_only_partitioned_ids_and_differ_per_interval():
    outputs = {"raw": "1" * 64, "lookup": "2" * 64}
    day1 = run_outputs(outputs, frozenset({"raw"}), "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    day2 = run_outputs(outputs, frozenset({"raw"}), "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")
    assert day1["lookup"] == day2["lookup"] == "2" * 64
    assert len({day1["raw"], day2["raw"], "1" * 64}) == 3


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ([], set()),
        (["b"], {"b"}),
        ("b", {"b"}),
        (["all"], {"a", "b", "c"}),
    ],
)
def test_rebuild_param(asked, expected):
    assert requested_rebuilds({"rebuild": asked}, ["a", "b", "c"]) == expected


def test_rebuild_param_with_unknown_task_fails_loudly():
    with pytest.raises(AlamodeError, match="rebuild names unknown tasks: zz"):
        requested_rebuilds({"rebuild": ["zz"]}, ["a"])


def test_partitioned_run_without_interval_says_how_to_run_it():
    run = RunInfo("manual__x", None, frozenset())
    assert run.output_id("raw", "1" * 64, partitioned=False) == "1" * 64
    with pytest.raises(AlamodeError, match=r"task 'raw': .* trigger it with one \(`airflow dags"):
        run.output_id("raw", "1" * 64, partitioned=True)
    empty = RunInfo("x", ("2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z"), frozenset())
    with pytest.raises(AlamodeError, match=r"data interval \[2026-01-02T00:00:00Z, .*\) is empty"):
        empty.output_id("raw", "1" * 64, partitioned=True)
