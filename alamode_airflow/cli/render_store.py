"""How store answers look: rich tables and trees for people, dictionaries for --json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.tree import Tree

from a_la_mode.ids import short
from alamode_airflow.cli.render import console
from alamode_airflow.history import Explanation, LineageNode, TaskStatus, Verdict, occurrences

STYLE = {
    "done": "green",
    "stale": "yellow",
    "per interval": "green",
    "missing": "yellow",
    "corrupt": "red",
    "vanished": "red",
    "newer": "red",
    "incomplete": "yellow",
}


def status_json(row: TaskStatus) -> dict[str, Any]:
    record = row.record
    return {
        "task": row.task,
        "output_id": row.output_id,
        "status": row.state,
        "stale": row.stale,
        "run_id": record.run_id if record else None,
        "dag_id": record.dag_id if record else None,
        "produced_at": record.end if record else None,
        "location": row.location,
        "generation": row.generation,
        "reason": row.reason or None,
        "intervals": None
        if row.intervals is None
        else [
            {"output_id": r.output_id, "interval": list(r.interval or ()), "run_id": r.run_id}
            for r in row.intervals
        ],
    }


def status_table(file: Path, rows: list[TaskStatus]) -> None:
    table = Table(title=f"{file}", title_justify="left")
    for column in ("task", "output", "status", "produced by", "at", "location"):
        table.add_column(column)
    for row in rows:
        record = row.record
        state = row.state
        table.add_row(
            row.task,
            short(row.output_id),
            f"[{STYLE[state]}]{state}[/]"
            + (f" (gen {row.generation})" if row.generation else "")
            + (f": {row.stale}" if row.stale else "")
            + (f": {len(row.intervals)} intervals" if row.intervals else ""),
            f"{record.dag_id} {record.run_id}" if record else "-",
            record.end if record else "-",
            row.location if record else "-",
        )
    console.print(table)
    done = sum(1 for row in rows if row.state in ("done", "per interval"))
    stale = sum(1 for row in rows if row.state == "stale")
    console.print(f"{done} of {len(rows)} outputs done" + (f", {stale} stale" if stale else ""))


def explanation_json(result: Explanation) -> dict[str, Any]:
    nearest = result.nearest
    return {
        "task": result.task,
        "output_id": result.output_id,
        "verdict": result.verdict.value,
        "nearest": nearest.output_id if nearest else None,
        "nearest_run": nearest.run_id if nearest else None,
        "reasons": result.reasons(),
        "note": result.note or None,
    }


def explanation(result: Explanation) -> None:
    head = f"[bold]{result.task}[/] ({short(result.output_id)})"
    if result.verdict is Verdict.UP_TO_DATE:
        console.print(f"{head} is up to date: it will be skipped")
        return
    if result.verdict is Verdict.PER_INTERVAL:
        console.print(
            f"{head} runs once per data interval: {result.intervals} intervals are recorded "
            "and skip; every other interval will run"
        )
        return
    if result.verdict is Verdict.STALE:
        console.print(f"{head} will run as a new generation: it is stale")
        for line in result.reasons():
            console.print(f"  - {line}")
        return
    if result.verdict is Verdict.NEVER_BUILT:
        console.print(f"{head} will run: no output of this task was ever recorded")
        if result.note:
            console.print(f"  note: {result.note}")
        return
    nearest = result.nearest
    console.print(
        f"{head} will run. Nearest earlier output {short(nearest.output_id)} "
        f"(run {nearest.run_id} of {nearest.dag_id}, {nearest.end}) differs:"
    )
    for line in result.reasons():
        console.print(f"  - {line}")


def lineage_json(tree: LineageNode) -> dict[str, Any]:
    """The tree as nested dictionaries. A node shown in full earlier (depth first,
    inputs in name order) is repeated as a reference: its output ID, generation, task
    and check with ``"repeat": true``, without its record and inputs."""
    shown: list[dict[str, Any]] = []
    for occurrence in occurrences(tree):
        node = occurrence.node
        record = node.record
        entry: dict[str, Any] = {
            "output_id": node.output_id,
            "task": record.task if record else None,
            "generation": node.generation,
            "check": node.check.value if node.check else None,
            "problems": list(node.problems),
            "repeat": occurrence.repeated,
        }
        if not occurrence.repeated:
            entry["record"] = record.to_json() if record else None
            entry["inputs"] = {}
        if occurrence.parent is not None:
            shown[occurrence.parent]["inputs"][occurrence.name] = entry
        shown.append(entry)
    return shown[0]


def lineage_tree(tree: LineageNode) -> None:
    """The tree for people; a node shown in full above is one line saying so."""
    branches: list[Tree] = []
    for occurrence in occurrences(tree):
        node = occurrence.node
        # The input's name is worth showing only where it is not its task's name.
        named = node.record and node.record.task == occurrence.name
        prefix = "" if occurrence.parent is None or named else f"{occurrence.name}: "
        label = _repeat(prefix, node) if occurrence.repeated else _label(prefix, node)
        if occurrence.parent is None:
            branches.append(Tree(label))
        else:
            branches.append(branches[occurrence.parent].add(label))
    console.print(branches[0])


def _repeat(prefix: str, node: LineageNode) -> str:
    task = f"[bold]{node.record.task}[/] " if node.record else ""
    return f"{prefix}{task}{short(node.output_id)} gen {node.generation} [dim](shown above)[/]"


def _label(prefix: str, node: LineageNode) -> str:
    record = node.record
    check = ""
    if node.check is not None:
        colour = "green" if node.check.value == "ok" else "red"
        check = f" [{colour}]{node.check.value}[/]"
        check += "".join(f"\n    {problem}" for problem in node.problems)
    if record is None:
        return f"{prefix}{short(node.output_id)} [red]no record[/]{check}"
    return (
        f"{prefix}[bold]{record.task}[/] {short(node.output_id)}  "
        f"command={record.command!r} image={record.image} sha={record.sha}  "
        f"gen {record.generation} run={record.run_id} at {record.end}{check}"
    )
