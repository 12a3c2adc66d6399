"""``alamode gc``, ``pin`` and ``unpin``: reclaiming space without losing what is wanted."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import Progress
from rich.table import Table

from a_la_mode.ids import short
from alamode_airflow import gc
from alamode_airflow.cli.commands import cli
from alamode_airflow.cli.render import console
from alamode_airflow.cli.store_commands import json_option, open_store, store_option


@cli.command("gc")
@click.option(
    "--dags-folder",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder whose encoded files say which outputs are wanted "
    "(default: Airflow's [core] dags_folder).",
)
@click.option(
    "--any-dags-folder",
    is_flag=True,
    help="Accept a --dags-folder that holds no encoded files or is not Airflow's dags folder.",
)
@click.option("--older-than", default="30d", show_default=True, help="e.g. 30d, 12h, 0.")
@click.option("--yes", is_flag=True, help="Delete (without it, only show what would go).")
@store_option
@json_option
def gc_command(
    dags_folder: Path | None,
    any_dags_folder: bool,
    older_than: str,
    yes: bool,
    store_root: str | None,
    as_json: bool,
) -> int:
    """Reclaim outputs that no encoded file, pin or recent output needs, not even as an
    input, and the leftovers of dead attempts. A dry run unless --yes."""
    age = gc.parse_age(older_than)
    store = open_store(store_root)
    if yes:
        gc.local_root(store)  # refused before any listing: nothing to wait for
    roots = gc.roots(dags_folder or _configured_dags_folder(), any_folder=any_dags_folder)
    chosen = gc.plan(store, roots, age)
    outcome = None
    if yes:
        with Progress(console=console, transient=True, disable=as_json) as progress:
            bar = progress.add_task("collecting", total=len(chosen.reclaimable))
            outcome = gc.collect(store, chosen, lambda: progress.advance(bar))
    if as_json:
        click.echo(json.dumps(_as_json(chosen, outcome)))
    else:
        _report(chosen, outcome)
    return 0


def _configured_dags_folder() -> Path:
    from alamode_airflow._compat import conf

    return Path(conf.get("core", "dags_folder")).expanduser()


def _as_json(chosen: gc.Plan, outcome: gc.Outcome | None) -> dict:
    done = outcome or gc.Outcome()
    return {
        "reclaimable": [
            {"output_id": c.output_id, "task": c.task, "bytes": c.size, "newest": str(c.newest)}
            for c in chosen.reclaimable
        ],
        "leftovers": [_leftover_json(left) for left in chosen.leftovers],
        "unknown": [{"path": u.path, "task": u.task, "reason": u.reason} for u in chosen.unknown],
        "deleted": done.deleted,
        "in_use": done.busy,
        "spared": [{"output_id": oid, "reason": why} for oid, why in done.spared],
        "leftovers_deleted": [left.path for left in done.leftovers],
    }


def _leftover_json(left) -> dict:
    when = None if left.when is None else str(left.when)
    return {"kind": left.kind, "path": left.path, "bytes": left.size, "changed": when}


def _report(chosen: gc.Plan, outcome: gc.Outcome | None) -> None:
    table = Table(title="reclaimable", title_justify="left")
    for column in ("kind", "output or path", "task", "newest record / changed", "bytes"):
        table.add_column(column)
    for c in chosen.reclaimable:
        newest = str(c.newest or "-")
        table.add_row("output", short(c.output_id), c.task or "-", newest, f"{c.size:,}")
    for left in chosen.leftovers:
        table.add_row(left.kind, left.path, "-", str(left.when or "-"), f"{left.size:,}")
    console.print(table)
    if chosen.unknown:
        kept = Table(title="kept: cannot be read", title_justify="left")
        for column in ("path", "task", "reason"):
            kept.add_column(column)
        for u in chosen.unknown:
            kept.add_row(u.path, u.task or "-", u.reason)
        console.print(kept)
    total = sum(c.size for c in chosen.reclaimable) + sum(left.size for left in chosen.leftovers)
    counts = f"{len(chosen.reclaimable)} outputs and {len(chosen.leftovers)} leftovers"
    if outcome is None:
        console.print(f"{counts}, {total:,} bytes; run again with --yes to delete")
        return
    console.print(
        f"deleted {len(outcome.deleted)} outputs and {len(outcome.leftovers)} leftovers; "
        f"{len(outcome.busy)} in use and {len(outcome.spared)} wanted since the listing "
        "were left alone"
    )
    for output_id, why in outcome.spared:
        console.print(f"  kept {short(output_id)}: {why}")


@cli.command("pin")
@click.argument("output_id")
@store_option
def pin_command(output_id: str, store_root: str | None) -> int:
    """Keep OUTPUT_ID through every gc, whether or not a file still needs it."""
    gc.pin(open_store(store_root), output_id)
    console.print(f"pinned {output_id}")
    return 0


@cli.command("unpin")
@click.argument("output_id")
@store_option
def unpin_command(output_id: str, store_root: str | None) -> int:
    """Let gc reclaim OUTPUT_ID again once nothing else needs it."""
    existed = gc.unpin(open_store(store_root), output_id)
    console.print(f"unpinned {output_id}" if existed else f"{output_id} was not pinned")
    return 0
