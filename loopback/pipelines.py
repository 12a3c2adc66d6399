"""Generated pipelines for the cluster tests and benchmarks."""

from __future__ import annotations

import random
from pathlib import Path

from a_la_mode import Dag


def generated(dag_id: str, tasks: int, log: Path | None = None, seed: int = 50) -> Dag:
    """``tasks`` tasks, each reading up to two earlier ones (a fixed random shape).
    Each writes its name and its inputs' text to ``out.txt``, and appends its name to
    ``log`` if given (what executed, whichever worker ran it)."""
    rng = random.Random(seed)
    dag = Dag({"dag_id": dag_id})
    for n in range(tasks):
        parents = rng.sample(range(n), min(n, rng.randint(0, 2)))
        reads = "".join(f'cat "$ALAMODE_INPUT_T{p}/out.txt"; ' for p in parents)
        command = f'({reads}echo t{n}) > "$ALAMODE_OUTPUT/out.txt"'
        if log is not None:
            command = f"echo t{n} >> {log}; {command}"
        dag.task(f"t{n}", {"command": command}).add_dep([f"t{p}" for p in parents])
    return dag
