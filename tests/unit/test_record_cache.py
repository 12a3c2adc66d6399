"""The machine's record cache stays the size of what was looked up lately."""

from __future__ import annotations

import hashlib
import os
import time

from alamode_airflow.record_cache import KEEP_S, STAMP, SWEEP_EVERY_S, RecordCache

OUTPUT = "ab" * 32
DAY = 86400


def kept(cache: RecordCache, generation: int, age_s: float) -> str:
    """Keep a record's text as a plan would, written ``age_s`` ago; its MD5."""
    text = f'{{"generation": {generation}}}'
    cache.keep(OUTPUT, generation, text)
    when = time.time() - age_s
    os.utime(cache._path(OUTPUT, generation), (when, when))
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def test_copies_older_than_a_month_are_deleted_once_a_day(tmp_path, monkeypatch):
    folder = tmp_path / "records"
    monkeypatch.setenv("AIRFLOW__ALAMODE__RECORD_CACHE", str(folder))
    cache = RecordCache.configured("s3://bucket/store")
    old = kept(cache, 0, KEEP_S + DAY)
    young = kept(cache, 1, KEEP_S - DAY)
    leftover = cache._path(OUTPUT, 0).parent / ".tmp-interrupted"
    leftover.write_text("half")
    os.utime(leftover, (0, 0))
    # Never swept: the next cache made on the machine sweeps.
    cache = RecordCache.configured("s3://bucket/store")
    assert cache.get(OUTPUT, 0, old) is None  # read from the store again
    assert cache.get(OUTPUT, 1, young) is not None
    assert not leftover.exists()
    # Within the day, no cache sweeps again, whatever it finds.
    older = kept(cache, 2, KEEP_S + DAY)
    cache = RecordCache.configured("s3://bucket/store")
    assert cache.get(OUTPUT, 2, older) is not None
    # A day later, one does.
    when = time.time() - SWEEP_EVERY_S - 1
    os.utime(folder / STAMP, (when, when))
    cache = RecordCache.configured("s3://bucket/store")
    assert cache.get(OUTPUT, 2, older) is None
    assert cache.get(OUTPUT, 1, young) is not None


def test_a_cache_folder_that_does_not_exist_is_not_made_by_a_sweep(tmp_path, monkeypatch):
    folder = tmp_path / "records"
    monkeypatch.setenv("AIRFLOW__ALAMODE__RECORD_CACHE", str(folder))
    RecordCache.configured("s3://bucket/store")
    assert not folder.exists()
