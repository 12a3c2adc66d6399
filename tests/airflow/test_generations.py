"""Records name the generation of each input they read: a rebuild reaches everything
made from the replaced generation, in every DAG and run that meets it next."""

from __future__ import annotations

from pathlib import Path

from a_la_mode import Dag
from alamode_airflow.history import lineage, status
from alamode_airflow.store import OutputStore
from tests.airflow.conftest import executed, writer

DONE = {"alamode_plan": "success"}


def text(store: OutputStore, output_id: str, generation: int | None = None) -> str:
    return (Path(store.location(output_id, generation).path) / "out.txt").read_text()


def fetch_spec(counter: Path, version: Path) -> dict:
    return {"command": f'echo fetch >> {counter}; cat {version} > "$ALAMODE_OUTPUT/out.txt"'}


def reader(dag_id: str, name: str, counter: Path, version: Path, fails_if: Path | None = None):
    """A DAG whose ``name`` task reads a ``fetch`` task shared with other DAGs."""
    dag = Dag({"dag_id": dag_id})
    spec = writer(counter, name, reads="fetch")
    if fails_if is not None:
        spec = {"command": f"if [ -e {fails_if} ]; then exit 1; fi; {spec['command']}"}
    dag.task("fetch", fetch_spec(counter, version)) >> dag.task(name, spec)
    return dag


def test_a_rebuild_in_one_dag_reaches_the_shared_downstream_in_another(airflow, counter, tmp_path):
    version = tmp_path / "version"
    version.write_text("v1")
    one, two = reader("one", "report", counter, version), reader("two", "summary", counter, version)
    airflow.save(one, "one")
    airflow.save(two, "two")
    airflow.run("one", "2026-01-01")
    assert airflow.run("two", "2026-01-01") == {**DONE, "fetch": "skipped", "summary": "success"}

    version.write_text("v2")
    rebuilt = airflow.run("one", "2026-01-02", conf={"rebuild": ["fetch"]})
    assert rebuilt == {**DONE, "fetch": "success", "report": "success"}

    store = OutputStore(str(airflow.store))
    pipeline = two.encode()["tasks"]
    summary_id, fetch_id = pipeline["summary"]["output"], pipeline["fetch"]["output"]
    rows = {row.task: row for row in status(_load(two), store)}
    assert rows["summary"].state == "stale"
    assert rows["summary"].stale == "input fetch is now generation 1"
    assert rows["fetch"].state == "done"

    # DAG two's next run: fetch is current, summary was made from generation 0.
    assert airflow.run("two", "2026-01-02") == {**DONE, "fetch": "skipped", "summary": "success"}
    assert "summary: output" in airflow.last_log
    assert "is stale: input fetch is now generation 1" in airflow.last_log
    assert text(store, summary_id) == "v2summary\n"
    assert text(store, summary_id, 0) == "v1summary\n"  # the old generation stays
    current = store.lookup(summary_id)
    assert current.generation == 1
    assert current.record.input_generations == {"fetch": 1}
    # lineage follows what each generation read, not what is current now.
    old = lineage(store, summary_id, generation=0)
    assert old.inputs["fetch"].generation == 0
    assert lineage(store, summary_id).inputs["fetch"].generation == 1
    assert executed(counter).count("summary") == 2
    assert store.lookup(fetch_id).generation == 1


def test_a_downstream_that_failed_during_the_rebuild_is_recomputed_next_run(
    airflow, counter, tmp_path
):
    version, broken = tmp_path / "version", tmp_path / "broken"
    version.write_text("v1")
    dag = reader("one", "report", counter, version, fails_if=broken)
    airflow.save(dag, "one")
    airflow.run("one", "2026-01-01")
    version.write_text("v2")
    broken.touch()
    states = airflow.run("one", "2026-01-02", ok=False, conf={"rebuild": ["fetch"]})
    assert states == {**DONE, "fetch": "success", "report": "failed"}
    broken.unlink()
    # A plain run: report's record is from generation 0 of fetch, so it runs again.
    assert airflow.run("one", "2026-01-03") == {**DONE, "fetch": "skipped", "report": "success"}
    store = OutputStore(str(airflow.store))
    report_id = dag.encode()["tasks"]["report"]["output"]
    assert text(store, report_id) == "v2report\n"
    assert airflow.run("one", "2026-01-04") == {**DONE, "fetch": "skipped", "report": "skipped"}


def _load(dag: Dag):
    from a_la_mode import load

    return load(dag.bencode())
