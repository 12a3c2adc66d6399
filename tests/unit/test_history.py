"""status, explain and lineage over a store filled the way the engine fills it."""

from __future__ import annotations

import json

import pytest

from a_la_mode import load
from alamode_airflow.cli import main
from alamode_airflow.history import Check, Verdict, explain, lineage, status
from alamode_airflow.manifests import remove
from alamode_airflow.store import Found, OutputStore
from tests.unit.storefill import diamond_ladder, produce


@pytest.fixture
def store(tmp_path) -> OutputStore:
    return OutputStore(str(tmp_path / "store"))


def test_status_says_which_run_produced_what(store, collage):
    first = load(collage.bencode())
    produce(store, first, "2026-01-01", names={"download_images", "blur"})
    rows = {row.task: row for row in status(first, store)}
    assert rows["blur"].status is Found.DONE
    assert rows["blur"].record.run_id == "2026-01-01"
    assert rows["blur"].location.endswith(f"objects/{first['blur'].output}/0/data")
    assert rows["collage"].status is Found.MISSING


def test_explain_names_the_changed_spec_key_and_the_changed_upstream(store, collage):
    first = load(collage.bencode())
    produce(store, first, "2026-01-01")
    collage.blur.spec["sha"] = "qwetr3"
    second = load(collage.bencode())
    assert explain(second, "edge_enhance", store).verdict is Verdict.UP_TO_DATE
    blur = explain(second, "blur", store)
    assert blur.verdict is Verdict.CHANGED
    assert blur.nearest.output_id == first["blur"].output
    assert blur.reasons() == ["spec sha: '6f09d' -> 'qwetr3'"]
    assert explain(second, "collage", store).reasons() == ["upstream blur has a new output ID"]


def test_explain_picks_the_nearest_of_several_earlier_outputs(store, collage):
    produce(store, load(collage.bencode()), "2026-01-01")
    collage.blur.spec["sha"] = "v2"
    produce(store, load(collage.bencode()), "2026-01-02", names={"blur"})
    collage.blur.spec["sha"] = "v3"
    collage.blur.spec["command"] = "python t.py blur --more"
    result = explain(load(collage.bencode()), "blur", store)
    assert result.nearest.run_id == "2026-01-02"
    assert result.reasons() == [
        "spec command: 'python t.py blur' -> 'python t.py blur --more'",
        "spec sha: 'v2' -> 'v3'",
    ]


def test_explain_for_a_task_never_built(store, collage):
    result = explain(load(collage.bencode()), "blur", store)
    assert result.verdict is Verdict.NEVER_BUILT


def test_lineage_walks_inputs_and_verify_finds_tampered_bytes(store, collage, tmp_path):
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01")
    tree = lineage(store, pipeline["collage"].output, verify=True)
    assert tree.record.task == "collage"
    assert set(tree.inputs) == {"blur", "edge_enhance"}
    assert tree.inputs["blur"].inputs["download_images"].check is Check.OK
    data = tmp_path / "store/objects" / pipeline["download_images"].output / "0" / "data"
    (data / "out.txt").write_text("tampered")
    (data / "extra.bin").write_bytes(b"x")
    node = lineage(store, pipeline["collage"].output, verify=True).inputs["blur"]
    bad = node.inputs["download_images"]
    assert bad.check is Check.BAD_DATA
    assert bad.problems == ("out.txt: sha256 differs", "extra.bin: not in the manifest")


def test_lineage_says_when_an_input_generation_now_holds_other_files(store, collage, tmp_path):
    pipeline = load(collage.bencode())
    produce(store, pipeline, "2026-01-01")
    remove(tmp_path / "store/objects" / pipeline["download_images"].output)
    produce(store, pipeline, "2026-01-02", names={"download_images"})  # generation 0 again
    assert store.lookup(pipeline["download_images"].output).generation == 0
    node = lineage(store, pipeline["collage"].output, verify=True).inputs["blur"]
    gone = node.inputs["download_images"]
    assert (gone.record, gone.check) == (None, Check.MISSING)
    assert gone.problems == (
        "generation 0 now holds other files than the ones read (it was removed and made "
        "again): what was read is gone",
    )
    rows = {row.task: row for row in status(pipeline, store)}
    assert rows["blur"].stale == (
        "input download_images generation 0 now holds other files than the ones read (it was "
        "removed and made again)"
    )


def test_cli_status_explain_lineage(store, collage, tmp_path, capsys):
    path = collage.save(tmp_path / "collage.alamode")
    pipeline = load(path)
    produce(store, pipeline, "2026-01-01", names={"download_images"})
    root = str(tmp_path / "store")
    assert main(["status", str(path), "--store", root, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["task"], r["status"]) for r in rows] == [
        ("download_images", "done"),
        ("blur", "missing"),
        ("edge_enhance", "missing"),
        ("collage", "missing"),
    ]
    assert rows[0]["run_id"] == "2026-01-01"
    assert rows[0]["generation"] == 0
    assert rows[1]["generation"] is None
    assert main(["explain", str(path), "blur", "--store", root]) == 0
    assert "no output of this task was ever recorded" in capsys.readouterr().out
    assert main(["explain", str(path), "nope", "--store", root]) == 2
    output = pipeline["download_images"].output
    assert main(["lineage", output, "--store", root, "--verify"]) == 0
    assert "download_images" in capsys.readouterr().out
    (tmp_path / "store/objects" / output / "0/data/out.txt").write_text("changed")
    assert main(["lineage", output, "--store", root, "--verify", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == ["out.txt: sha256 differs"]


def test_partitioned_tasks_have_status_explain_and_verified_lineage(store, tmp_path, capsys):
    from a_la_mode import Dag

    dag = Dag({"dag_id": "daily", "partition": "interval"})
    dag.task("raw", {"command": "true"}) >> dag.task("report", {"command": "true"})
    pipeline = load(dag.bencode())
    for day in ("01", "02"):
        interval = (f"2026-01-{day}T00:00:00Z", f"2026-01-{int(day) + 1:02d}T00:00:00Z")
        produce(store, pipeline, f"2026-01-{day}", interval=interval)
    rows = {row.task: row for row in status(pipeline, store)}
    assert rows["report"].state == "per interval"
    assert [r.interval[0] for r in rows["report"].intervals] == [
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ]
    result = explain(pipeline, "report", store)
    assert result.verdict is Verdict.PER_INTERVAL
    assert result.intervals == 2
    newest = rows["report"].intervals[-1]
    tree = lineage(store, newest.output_id, verify=True)
    assert tree.check is Check.OK
    assert tree.inputs["raw"].check is Check.OK
    assert tree.inputs["raw"].record.interval == newest.interval
    (tmp_path / "daily.alamode").write_bytes(dag.bencode())
    args = ["status", str(tmp_path / "daily.alamode"), "--store", store.url, "--json"]
    assert main(args) == 0
    report = {row["task"]: row for row in json.loads(capsys.readouterr().out)}
    assert report["report"]["status"] == "per interval"
    assert len(report["report"]["intervals"]) == 2


def test_explain_compares_a_changed_partitioned_task_with_its_earlier_intervals(store):
    from a_la_mode import Dag

    old = Dag({"partition": "interval"})
    old.task("raw", {"command": "echo v1"})
    new = Dag({"partition": "interval"})
    new.task("raw", {"command": "echo v2"})
    interval = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    produce(store, load(old.bencode()), "2026-01-01", interval=interval)
    result = explain(load(new.bencode()), "raw", store)
    assert result.verdict is Verdict.CHANGED
    assert result.reasons() == ["spec command: 'echo v1' -> 'echo v2'"]


class CountingStore(OutputStore):
    """A real local store that counts the records it reads and the outputs it fetches."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: list[tuple[str, int]] = []
        self.fetches: list[str] = []

    def _read(self, output_id, generation, keys):
        # Every record read, by a lookup or by ``read``, goes through here.
        self.reads.append((output_id, generation))
        return super()._read(output_id, generation, keys)

    def fetch(self, record, into):
        self.fetches.append(record.output_id)
        return super().fetch(record, into)


def test_lineage_reads_and_verifies_each_shared_ancestor_once(tmp_path):
    ladder = diamond_ladder(13)  # 40 tasks, 8192 paths from the top to top0
    store = CountingStore(str(tmp_path / "store"))
    produce(store, ladder, "2026-01-01")
    store.reads.clear()
    tree = lineage(store, ladder["top13"].output, verify=True)
    assert len(set(store.reads)) == len(store.reads) == 40
    assert sorted(store.fetches) == sorted(task.output for task in ladder)
    assert tree.inputs["l12"].inputs["top12"] is tree.inputs["r12"].inputs["top12"]


def test_lineage_of_a_long_chain(tmp_path):
    from a_la_mode import Dag

    dag = Dag({"dag_id": "chain"})
    last = dag.task("t0", {"command": "echo 0"})
    for n in range(1, 400):
        last = last >> dag.task(f"t{n}", {"command": f"echo {n}"})
    chain = load(dag.bencode())
    store = OutputStore(str(tmp_path / "store"))
    produce(store, chain, "2026-01-01")
    node, depth = lineage(store, chain["t399"].output, verify=True), 1
    while node.inputs:
        (node,) = node.inputs.values()
        depth += 1
    assert (depth, node.record.task, node.check) == (400, "t0", Check.OK)


def test_cli_lineage_shows_a_shared_ancestor_once_and_refers_back_to_it(tmp_path, capsys):
    ladder = diamond_ladder(13)
    store = OutputStore(str(tmp_path / "store"))
    produce(store, ladder, "2026-01-01")
    (tmp_path / "store/objects" / ladder["top0"].output / "0/data/out.txt").write_text("x")
    argv = ["lineage", ladder["top13"].output, "--store", store.url, "--verify"]
    assert main([*argv, "--json"]) == 1
    shown, stack = [], [json.loads(capsys.readouterr().out)]
    while stack:
        shown.append(stack.pop())
        stack.extend(shown[-1].get("inputs", {}).values())
    full = [entry["task"] for entry in shown if not entry["repeat"]]
    assert sorted(full) == sorted(task.name for task in ladder)
    # One line per input a record names (53), not one per path (16,383 nodes).
    assert len(shown) == 1 + sum(len(task.inputs) for task in ladder)
    (top0,) = [entry for entry in shown if entry["task"] == "top0" and not entry["repeat"]]
    assert top0["problems"] == ["out.txt: sha256 differs"]
    assert {e["check"] for e in shown if e["task"] == "top0"} == {Check.BAD_DATA.value}


def test_cli_lineage_tree_prints_each_record_once(store, tmp_path, capsys):
    ladder = diamond_ladder(3)
    produce(store, ladder, "2026-01-01")
    assert main(["lineage", ladder["top3"].output, "--store", store.url]) == 0
    printed = capsys.readouterr().out
    for task in ladder:
        assert printed.count(f"command='echo {task.name}'") == 1, task.name
    assert printed.count("(shown above)") == 3  # top0, top1 and top2, each read twice


def test_status_on_an_object_store_reads_each_record_once(server, monkeypatch):
    """``alamode status`` (and the DAG's Provenance page) costs the walk the plan does:
    a read per record and pages of keys, not a lookup more per task for its location."""
    from tests.unit.counting import requests_sent

    monkeypatch.setenv("AIRFLOW_CONN_ALAMODE_STATUS_S3", server.connection())
    bucket = OutputStore("s3://alamode-outputs/status", conn_id="alamode_status_s3")
    ladder = diamond_ladder(30)  # 91 tasks
    produce(bucket, ladder, "r1", names={t.name for t in ladder if t.name != "top30"})
    with requests_sent(bucket.root.fs) as sent:
        rows = status(ladder, bucket)
    assert [r.status for r in rows].count(Found.DONE) == 90
    assert rows[-1].status is Found.MISSING
    assert "alamode-outputs/status/objects/" in rows[0].location
    reads = [url for method, url in sent if url.endswith("record.json")]
    assert len(reads) == 90
    assert len(sent) - len(reads) <= 10, "\n".join(f"{m} {u}" for m, u in sent)
