"""A secret rendered into a command on a real Airflow: the command runs with it, and
the success record keeps it masked, as the Rendered Template tab shows it."""

from __future__ import annotations

import json
from dataclasses import replace

from a_la_mode import Dag
from alamode_airflow.store import OutputStore

SECRET = "alamode-s3cr3t-value"


def test_a_variable_rendered_into_the_command_is_masked_in_the_record(airflow):
    airflow = replace(airflow, extra_env=(("AIRFLOW_VAR_API_TOKEN", SECRET),))
    dag = Dag({"dag_id": "secret"})
    dag.task("call", {"command": 'echo "{{ var.value.api_token }}" > "$ALAMODE_OUTPUT/out.txt"'})
    airflow.save(dag, "secret")
    assert airflow.run("secret", "2026-01-01") == {"alamode_plan": "success", "call": "success"}
    store = OutputStore(str(airflow.store))
    output_id = dag.encode()["tasks"]["call"]["output"]
    found = store.lookup(output_id)
    assert found.record.command == 'echo "***" > "$ALAMODE_OUTPUT/out.txt"'
    assert (store.data_of(found.record) / "out.txt").read_text() == SECRET + "\n"
    # What Airflow's Rendered Template tab shows for the same field.
    [(rendered,)] = airflow.query(
        "select rendered_fields from rendered_task_instance_fields where task_id='call'"
    )
    assert json.loads(rendered)["command"] == found.record.command
