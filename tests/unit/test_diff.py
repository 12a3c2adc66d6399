"""diff: what changed between two versions and why each ID moved."""

from __future__ import annotations

import json

from a_la_mode import ChangeKind, KeyChange, diff, load


def test_equal_files(collage):
    result = diff(load(collage.bencode()), load(collage.bencode()))
    assert result.equal
    assert result.to_json()["equal"] is True


def test_spec_change_and_upstream_propagation(collage):
    before = load(collage.bencode())
    collage.blur.spec["sha"] = "qwetr3"
    result = diff(before, load(collage.bencode()))
    assert [(c.name, c.kind) for c in result.changed] == [
        ("blur", ChangeKind.SPEC),
        ("collage", ChangeKind.UPSTREAM),
    ]
    blur, mosaic = result.changed
    assert blur.spec_changes == (KeyChange("sha", "6f09d", "qwetr3"),)
    assert mosaic.upstream_changed == ("blur",)
    assert mosaic.spec_changes == ()
    assert not result.equal


def test_added_removed_and_rewired(collage):
    before = load(collage.bencode())
    collage.task("sharpen", {"command": "python t.py sharpen"}).add_dep(collage.download_images)
    collage.collage.add_dep(collage.sharpen)
    result = diff(before, load(collage.bencode()))
    assert result.added == ("sharpen",)
    (change,) = result.changed
    assert change.name == "collage"
    assert change.kind is ChangeKind.INPUTS
    assert change.inputs_added == ("sharpen",)
    reverse = diff(load(collage.bencode()), before)
    assert reverse.removed == ("sharpen",)
    assert reverse.changed[0].inputs_removed == ("sharpen",)


def test_spec_and_upstream_together(collage):
    before = load(collage.bencode())
    collage.blur.spec["sha"] = "x"
    collage.collage.spec["command"] = "python collage.py --big"
    (_, mosaic) = diff(before, load(collage.bencode())).changed
    assert mosaic.kind is ChangeKind.SPEC_AND_UPSTREAM
    assert mosaic.spec_changes == (
        KeyChange("command", "python collage.py", "python collage.py --big"),
    )


def test_meta_changes_are_reported_but_move_no_id(collage):
    before = load(collage.bencode())
    collage.meta["schedule"] = "@hourly"
    del collage.meta["dag_id"]
    result = diff(before, load(collage.bencode()))
    assert result.changed == ()
    assert result.meta_changes == (
        KeyChange("dag_id", "collage", None),
        KeyChange("schedule", "@daily", "@hourly"),
    )
    assert not result.equal


def test_settings_changes_are_named_by_their_path_and_move_no_id(collage):
    collage.meta["defaults"] = {"retries": 1}
    collage.blur.settings["pool"] = "db"
    before = load(collage.bencode())
    collage.meta["defaults"] = {"retries": 3, "queue": "io"}
    collage.blur.settings["pool"] = "gpu"
    collage.collage.settings["priority_weight"] = 5
    result = diff(before, load(collage.bencode()))
    assert (result.added, result.removed, result.changed) == ((), (), ())
    assert result.meta_changes == (
        KeyChange("defaults.queue", None, "io"),
        KeyChange("defaults.retries", 1, 3),
        KeyChange("tasks.blur.pool", "db", "gpu"),
        KeyChange("tasks.collage.priority_weight", None, 5),
    )


def test_json_form_uses_plain_values(collage):
    before = load(collage.bencode())
    collage.blur.spec["sha"] = "qwetr3"
    data = json.loads(json.dumps(diff(before, load(collage.bencode())).to_json()))
    assert data["changed"][0]["kind"] == "spec"
    assert data["changed"][0]["spec_changes"] == [{"key": "sha", "old": "6f09d", "new": "qwetr3"}]
