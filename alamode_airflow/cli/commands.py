"""The ``alamode`` subcommands. Each returns its exit status; output goes through
``render`` so people get tables and scripts get ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from a_la_mode import AlamodeError, load
from a_la_mode import diff as diff_pipelines
from a_la_mode.discover import find_dags
from a_la_mode.files import atomic_write
from alamode_airflow.cli import render
from alamode_airflow.dag_module import check_module, write_module
from alamode_airflow.factory import build_dag

SUFFIX = ".alamode"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Describe, inspect and compare a-la-mode pipelines."""


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write."
)
@click.option(
    "--dags-folder",
    type=click.Path(file_okay=False, path_type=Path),
    help=(
        "Write NAME.alamode here for every Dag, and NAME.py, the Airflow DAG file that"
        " builds it (default: NAME.alamode in the current folder)."
    ),
)
@click.option(
    "--no-check",
    is_flag=True,
    help="Do not build each Dag first (for a file meant for another deployment's config).",
)
def encode(pipeline: Path, output: Path | None, dags_folder: Path | None, no_check: bool) -> int:
    """Encode the Dags defined in PIPELINE (a Python file) to .alamode files, each
    checked first as the Airflow engine will build it."""
    if output and dags_folder:
        raise click.UsageError("give -o or --dags-folder, not both")
    dags = find_dags(pipeline)
    if output and len(dags) > 1:
        raise click.UsageError(
            f"{pipeline} defines {len(dags)} Dags ({', '.join(dags)}); use --dags-folder"
        )
    folder = dags_folder or Path.cwd()
    for name, dag in dags.items():
        target = output or folder / f"{name}{SUFFIX}"
        try:
            data = dag.bencode()
            encoded = load(data)
            if dags_folder:
                check_module(target)  # before anything is written
            if not no_check:
                # What the DAG processor will build from the file: a bad schedule or
                # setting is refused here, before the file replaces a working one.
                build_dag(encoded, target)
            atomic_write(target, data)
            if dags_folder:
                write_module(target, encoded)
        except AlamodeError as exc:
            exc.in_file(str(pipeline))
            raise
        render.wrote(name, target, len(dag))
    return 0


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(file: Path, as_json: bool) -> int:
    """List FILE's tasks in topological order with their inputs and output IDs."""
    pipeline = load(file)
    if as_json:
        click.echo(json.dumps(render.pipeline_json(pipeline), indent=2))
    else:
        render.pipeline_table(pipeline)
    return 0


@cli.command()
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def diff(old: Path, new: Path, as_json: bool) -> int:
    """Compare two encoded files; exit 0 if equal, 1 if they differ."""
    result = diff_pipelines(load(old), load(new))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=render.json_default))
    else:
        render.diff_report(result)
    return 0 if result.equal else 1


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Picture to write: .svg or .png.",
)
def graph(file: Path, output: Path) -> int:
    """Draw FILE's tasks and dependencies, labelled with name and short ID."""
    from alamode_airflow.cli.picture import draw

    draw(load(file), output)
    render.wrote("graph", output, None)
    return 0
