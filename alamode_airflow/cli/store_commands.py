"""``alamode status``, ``explain`` and ``lineage``: what the store says about outputs;
``alamode index``: the task markers ``explain`` reads, for outputs committed before them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from a_la_mode import load
from a_la_mode.errors import NotAStoreError
from alamode_airflow.cli import render_store
from alamode_airflow.cli.commands import cli
from alamode_airflow.history import Check, explain, lineage, occurrences, status
from alamode_airflow.listing import child_names
from alamode_airflow.store import OutputStore
from alamode_airflow.task_index import rebuild

#: The folders a store's root holds (``trash`` is gc's, ``pins`` pinned outputs,
#: ``tasks`` the markers of ``task_index``, ``packs`` the plans' record packs,
#: ``index`` what earlier versions kept).
STORE_FOLDERS = frozenset(
    {
        "tasks",
        "packs",
        "objects",
        "staging",
        "locks",
        "gates",
        "quarantine",
        "claims",
        "pins",
        "trash",
        "partitions",
        "index",
    }
)

store_option = click.option(
    "--store",
    "store_root",
    help="Storage root (default: Airflow's [alamode] storage_root).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def open_store(root: str | None) -> OutputStore:
    """``--store``, else the configured root with its ``storage_conn_id``; a root that
    is not a store is refused (NotAStoreError) rather than read as one holding nothing,
    which would report every output missing."""
    store = OutputStore.configured(root)
    check_store(store, given=root is not None)
    return store


def check_store(store: OutputStore, given: bool) -> None:
    """What counts as a store: a folder that is empty (a new store: nothing produced
    yet) or holds at least one of the store's folders (``objects/``, ``staging/``, ...).
    A local root that does not exist is refused when ``given`` by ``--store`` (a typo);
    the configured default may not exist yet before the first run. On an object store a
    prefix with nothing under it does not exist as such, so only its content is checked.
    """
    where = store.url
    if store.local and not store.root.exists():
        if given:
            raise NotAStoreError("no such store: the folder does not exist", file=where)
        return
    if store.local and not store.root.is_dir():
        raise NotAStoreError("not a store: a file, not a folder", file=where)
    names = set(child_names(store.root))
    if names and not names & STORE_FOLDERS:
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise NotAStoreError(f"not a store: it holds {shown} but no objects/ folder", file=where)


@cli.command("status")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@store_option
@json_option
def status_command(file: Path, store_root: str | None, as_json: bool) -> int:
    """Per task of FILE: done or missing, which run produced it and when, where it is."""
    rows = status(load(file), open_store(store_root))
    if as_json:
        click.echo(json.dumps([render_store.status_json(row) for row in rows], indent=2))
    else:
        render_store.status_table(file, rows)
    return 0


@cli.command("explain")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("task")
@store_option
@json_option
def explain_command(file: Path, task: str, store_root: str | None, as_json: bool) -> int:
    """Why TASK of FILE will run: what differs from its nearest earlier output."""
    pipeline = load(file)
    if task not in pipeline.tasks:
        raise click.UsageError(f"{file} has no task {task!r}")
    # The DAG's id as the engine names it: meta dag_id, else the file's name.
    dag_id = pipeline.meta.get("dag_id") or file.stem
    result = explain(pipeline, task, open_store(store_root), dag_id)
    if as_json:
        click.echo(json.dumps(render_store.explanation_json(result), indent=2, default=str))
    else:
        render_store.explanation(result)
    return 0


@cli.command("lineage")
@click.argument("output_id")
@click.option("--verify", is_flag=True, help="Re-hash preimages and stored bytes.")
@store_option
@json_option
def lineage_command(output_id: str, verify: bool, store_root: str | None, as_json: bool) -> int:
    """The tree of what produced OUTPUT_ID; exit 1 if --verify finds a mismatch."""
    tree = lineage(open_store(store_root), output_id, verify)
    if as_json:
        click.echo(json.dumps(render_store.lineage_json(tree), indent=2))
    else:
        render_store.lineage_tree(tree)
    return 1 if verify and _bad(tree) else 0


def _bad(tree) -> bool:
    return any(o.node.check not in (Check.OK, None) for o in occurrences(tree) if not o.repeated)


@cli.command("index")
@store_option
def index_command(store_root: str | None) -> int:
    """Write the task markers explain reads for outputs committed without them (by an
    earlier version): every record is read once. Run it once on such a store."""
    done = rebuild(open_store(store_root))
    click.echo(
        f"{done.records} records: {done.written} task markers written, "
        f"{done.removed} that named nothing removed"
    )
    return 0
