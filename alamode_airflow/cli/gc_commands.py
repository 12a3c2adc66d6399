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
    required=True,
    help="Folder whose encoded files say which outputs are wanted.",
)
@click.option("--older-than", default="30d", show_default=True, help="e.g. 30d, 12h, 0.")
@click.option("--yes", is_flag=True, help="Delete (without it, only show what would go).")
@store_option
@json_option
def gc_command(
    dags_folder: Path, older_than: str, yes: bool, store_root: str | None, as_json: bool
) -> int:
    """Reclaim outputs no encoded file or pin needs. A dry run unless --yes."""
    store = open_store(store_root)
    keep = gc.roots(dags_folder) | gc.pins(store)
    chosen = gc.candidates(store, keep, gc.parse_age(older_than))
    deleted: list[str] = []
    busy: list[str] = []
    if yes and chosen:
        with Progress(console=console, transient=True, disable=as_json) as progress:
            bar = progress.add_task("collecting", total=len(chosen))
            deleted, busy = gc.collect(store, chosen, lambda: progress.advance(bar))
    if as_json:
        rows = [
            {"output_id": c.output_id, "task": c.task, "bytes": c.size, "newest": str(c.newest)}
            for c in chosen
        ]
        click.echo(json.dumps({"reclaimable": rows, "deleted": deleted, "in_use": busy}))
    else:
        _report(chosen, yes, deleted, busy)
    return 0


def _report(chosen, yes: bool, deleted: list[str], busy: list[str]) -> None:
    table = Table(title="reclaimable outputs", title_justify="left")
    for column in ("output", "task", "newest record", "bytes"):
        table.add_column(column)
    for c in chosen:
        table.add_row(short(c.output_id), c.task or "-", str(c.newest or "-"), f"{c.size:,}")
    console.print(table)
    total = sum(c.size for c in chosen)
    if not yes:
        console.print(f"{len(chosen)} outputs, {total:,} bytes; run again with --yes to delete")
        return
    console.print(f"deleted {len(deleted)} outputs; {len(busy)} in use were left alone")


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
