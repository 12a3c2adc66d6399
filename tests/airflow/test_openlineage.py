"""OpenLineage on a real Airflow: with the provider's file transport configured, every
event a run emits is valid, outputs are named by output ID with their generation, and
inputs carry the IDs and generations read. A task that finds its output committed
reports it as reused, naming the attempt that produced it; tasks the plan skips never
start and emit nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from a_la_mode import Dag
from tests.airflow.conftest import executed, writer
from tests.unit.openlineage_spec import problems

DATE = "2026-01-01"


@pytest.fixture
def lineage(airflow, tmp_path):
    """The test's Airflow with the provider's file transport: (airflow, events folder)."""
    events = tmp_path / "events"
    events.mkdir()
    transport = {"type": "file", "log_file_path": str(events / "event"), "append": False}
    env = (("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport)),)
    return replace(airflow, extra_env=env), events


def read_events(events: Path) -> list[dict]:
    """Every event written so far, once each (files are removed as read)."""
    found = []
    for path in sorted(events.iterdir()):
        found += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.unlink()
    return found


def completes(events: list[dict]) -> dict[str, dict]:
    """The COMPLETE event of each of the pipeline's tasks, by task name."""
    done = {}
    for event in events:
        task = event["job"]["name"].split(".", 1)[-1]
        if event["eventType"] == "COMPLETE" and event["outputs"]:
            done[task] = event
    return done


def test_every_event_is_valid_and_names_outputs_and_inputs_by_id(lineage, counter):
    airflow, events = lineage
    dag = Dag({"dag_id": "lineage"})
    dag.task("fetch", writer(counter, "fetched")) >> dag.task(
        "report", writer(counter, "reported", reads="fetch")
    )
    # The same spec, so the same output: whichever of the two runs second finds it
    # committed and skips (AirflowSkipException), as a concurrent producer would.
    dag.task("twin", writer(counter, "fetched"))
    airflow.save(dag, "lineage")
    ids = {name: task["output"] for name, task in dag.encode()["tasks"].items()}
    assert ids["twin"] == ids["fetch"]

    first = airflow.run("lineage", DATE)
    assert sorted(first.values()) == ["skipped", "success", "success", "success"]
    emitted = read_events(events)
    assert emitted, "no OpenLineage event was written"
    assert [(n, p) for n, e in enumerate(emitted) for p in problems(e)] == []
    done = completes(emitted)
    assert set(done) == {"fetch", "twin", "report"}
    made, reused = sorted(("fetch", "twin"), key=lambda name: first[name] == "skipped")
    facet = done[reused]["outputs"][0]["facets"]["alamode_output"]
    assert facet["reused"] is True
    assert (facet["outputId"], facet["generation"]) == (ids["fetch"], 0)
    assert facet["producedBy"]["task"] == made
    assert facet == {**done[made]["outputs"][0]["facets"]["alamode_output"], "reused": True}
    report = done["report"]
    [output] = report["outputs"]
    assert output["name"] == f"objects/{ids['report']}"
    assert output["namespace"] == f"file://{airflow.store}"  # no host: one dataset
    facet = output["facets"]["alamode_output"]
    assert (facet["outputId"], facet["generation"], facet["reused"]) == (ids["report"], 0, False)
    [read] = report["inputs"]
    assert read["name"] == f"objects/{ids['fetch']}"
    assert read["inputFacets"]["alamode_input"]["generation"] == 0
    assert report["job"]["facets"]["alamode_job"]["outputId"] == ids["report"]

    # Rebuilding fetch writes its generation 1, and report is made again from it.
    airflow.run("lineage", "2026-01-02", conf={"rebuild": ["fetch"]})
    done = completes(read_events(events))
    assert done["fetch"]["outputs"][0]["facets"]["alamode_output"]["generation"] == 1
    read = done["report"]["inputs"][0]["inputFacets"]["alamode_input"]
    assert (read["outputId"], read["generation"]) == (ids["fetch"], 1)

    # A run with everything recorded: the plan skips every task and none starts.
    before = executed(counter)
    again = airflow.run("lineage", "2026-01-03")
    assert again == {"alamode_plan": "success", **dict.fromkeys(ids, "skipped")}
    assert executed(counter) == before
    emitted = read_events(events)
    assert [(n, p) for n, e in enumerate(emitted) for p in problems(e)] == []
    assert {e["job"]["name"] for e in emitted} == {"lineage", "lineage.alamode_plan"}
