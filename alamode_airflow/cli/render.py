"""How CLI results look: rich tables for people, plain dictionaries for ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from a_la_mode import DiffResult, Pipeline
from a_la_mode.ids import short
from a_la_mode.values import thaw

console = Console(highlight=False)


def json_default(value: Any) -> Any:
    """JSON for what json cannot write: byte strings that are not UTF-8 become hex."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def wrote(name: str, path: Path, tasks: int | None) -> None:
    detail = f" ({tasks} tasks)" if tasks is not None else ""
    console.print(f"wrote [bold]{name}[/]{detail} -> {path}")


def pipeline_json(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "file": pipeline.source,
        "meta": thaw(pipeline.meta),
        "tasks": [
            {
                "name": task.name,
                "output": task.output,
                "inputs": dict(task.inputs),
                "spec": thaw(task.spec),
            }
            for task in pipeline
        ],
    }


def pipeline_table(pipeline: Pipeline) -> None:
    table = Table(title=f"{pipeline.source}: {len(pipeline)} tasks", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("task", style="bold")
    table.add_column("output", style="cyan")
    table.add_column("inputs")
    for number, task in enumerate(pipeline, 1):
        inputs = ", ".join(f"{dep} ({short(out)})" for dep, out in task.inputs.items())
        table.add_row(str(number), task.name, task.short_id, inputs or "-")
    console.print(table)
    if pipeline.meta:
        meta = ", ".join(f"{k}={v!r}" for k, v in thaw(pipeline.meta).items())
        console.print(f"meta: {meta}")


def diff_report(result: DiffResult) -> None:
    if result.equal:
        console.print("no differences")
        return
    for name in result.added:
        console.print(f"[green]+ {name}[/] added")
    for name in result.removed:
        console.print(f"[red]- {name}[/] removed")
    for change in result.changed:
        console.print(
            f"[yellow]~ {change.name}[/] {short(change.old_output)} -> "
            f"{short(change.new_output)} ({change.kind.value})"
        )
        for key in change.spec_changes:
            console.print(f"    spec {key.key}: {key.old!r} -> {key.new!r}")
        for dep in change.upstream_changed:
            console.print(f"    upstream {dep} changed")
        for dep in change.inputs_added:
            console.print(f"    now reads {dep}")
        for dep in change.inputs_removed:
            console.print(f"    no longer reads {dep}")
    for key in result.meta_changes:
        console.print(f"[blue]meta[/] {key.key}: {key.old!r} -> {key.new!r}")
    if not (result.added or result.removed or result.changed):
        console.print("every output ID is unchanged: nothing will be computed again")
