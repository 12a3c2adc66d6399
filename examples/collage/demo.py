"""The main job end to end on a real Airflow (SQLite home in ``.airflow/``):

1. encode the collage pipeline into ``dags/collage.alamode`` (and its Airflow DAG file
   ``dags/collage.py``);
2. run the DAG: all 4 tasks run;
3. run it again: all 4 are skipped (their outputs are recorded);
4. change blur's ``sha``: only blur and collage run;
5. print where the collage PNGs are.

Run it with ``make demo``; then ``make airflow-ui`` shows these runs in Airflow's UI.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from a_la_mode import load
from alamode_airflow.cli import main as alamode
from alamode_airflow.store import OutputStore
from loopback.airflow_cli import AirflowHome

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "examples" / "collage" / "pipeline.py"
ENCODED = REPO / "dags" / "collage.alamode"
MODULE = ENCODED.with_suffix(".py")
TASKS = ("download_images", "blur", "edge_enhance", "collage")
console = Console(highlight=False)


def encode(pipeline: Path) -> None:
    if alamode(["encode", str(pipeline), "--dags-folder", str(ENCODED.parent)]) != 0:
        sys.exit("encoding failed")


def show_run(title: str, airflow: AirflowHome, expect_ran: set[str]) -> None:
    # ``dags test`` starts a run at its logical date: now, so that Airflow's UI shows each
    # run lasting the seconds it took (a date in the past would show months).
    now = datetime.now(UTC).isoformat(timespec="seconds")
    result = airflow.test_run("collage", now)
    pipeline = load(ENCODED)
    console.rule(f"[bold]{title}")
    console.print(f"airflow run {result.run_id}")
    table = Table()
    for column in ("task", "state", "output"):
        table.add_column(column)
    for task in TASKS:
        state = result.states[task]
        shown = f"[green]{state}[/]" if state == "success" else f"[dim]{state}[/]"
        table.add_row(task, shown, pipeline[task].short_id)
    console.print(table)
    ran = {task for task in TASKS if result.states[task] == "success"}
    if ran != expect_ran:
        sys.exit(f"expected {sorted(expect_ran)} to run, but {sorted(ran)} ran")


def changed_pipeline(workdir: Path) -> Path:
    source = PIPELINE.read_text().replace('"sha": "6f09d"', '"sha": "qwetr3"')
    target = workdir / "pipeline.py"
    target.write_text(source)
    return target


def main() -> None:
    home = REPO / ".airflow"
    shutil.rmtree(home, ignore_errors=True)
    airflow = AirflowHome(home, REPO / "dags")
    console.print(f"Airflow home: {home} (SQLite); outputs under {airflow.store}")
    airflow.migrate()
    originals = {path: path.read_bytes() for path in (ENCODED, MODULE) if path.exists()}
    encode(PIPELINE)
    first = load(ENCODED)["collage"].output
    show_run("1. first run: every task computes", airflow, set(TASKS))
    show_run("2. same file again: every output is recorded", airflow, set())
    try:
        with tempfile.TemporaryDirectory() as workdir:
            encode(changed_pipeline(Path(workdir)))
        second = load(ENCODED)["collage"].output
        show_run("3. blur's sha changed", airflow, {"blur", "collage"})
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
    for label, output in (("original", first), ("after the change", second)):
        png = Path(OutputStore(str(airflow.store)).location(output).path) / "collage.png"
        console.print(f"collage ({label}): {png}")


if __name__ == "__main__":
    main()
