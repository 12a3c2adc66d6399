"""The provenance pages as HTML: pure renderers of what ``facts`` gathered.

Links: ``Links.root`` is where this app is mounted (``/alamode`` under Airflow's base
path) and ``Links.base`` Airflow's own base path. Every link opens in the frame the
page is in: Airflow's UI shows these pages in a sandboxed iframe, which may not navigate
the whole window.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from a_la_mode.ids import short
from alamode_airflow.history import Verdict
from alamode_airflow.view.facts import Attempt, InstanceFacts, TaskRow
from alamode_airflow.view.html import (
    STATE_COLOURS,
    badge,
    esc,
    facts,
    link,
    note,
    page,
    path,
    table,
)

#: What a user who cleared a skipped task must know (the task instance page says it).
CLEAR_RULE = (
    "Clear re-runs an attempt; it never recomputes a recorded output (the location that "
    "succeeded is never written again). To recompute, rebuild."
)


@dataclass(frozen=True)
class Links:
    root: str  # this app: "/alamode", under Airflow's base path
    base: str = ""  # Airflow's base path

    def dag(self, dag_id: str, run_id: str | None = None) -> str:
        return self.root + path("dags", dag_id, query={"run_id": run_id})

    def instance(self, dag_id: str, run_id: str, task: str) -> str:
        return self.root + path("dags", dag_id, "runs", run_id, "tasks", task)

    def output(self, output_id: str, generation: int | None = None, verify: bool = False) -> str:
        query = {"generation": generation, "verify": 1 if verify else None}
        return self.root + path("outputs", output_id, query=query)

    def rebuild(self, dag_id: str, tasks: Sequence[str]) -> str:
        return self.root + path("dags", dag_id, "rebuild", query={"task": list(tasks)})

    def airflow_run(self, dag_id: str, run_id: str) -> str:
        return self.base + path("dags", dag_id, "runs", run_id)

    def airflow_instance(self, dag_id: str, run_id: str, task: str) -> str:
        return self.base + path("dags", dag_id, "runs", run_id, "tasks", task)


#: What a page says of a record of a DAG the user may not read (as the lineage does).
ANOTHER_DAG = '<span class="muted">(another DAG)</span>'


def shown(record: Any, readable: Collection[str] | None) -> bool:
    """Whether a page may detail ``record``: its DAG is one the user may read (``readable``;
    None when the caller checked every DAG the page names)."""
    return record is not None and (readable is None or record.dag_id in readable)


def produced(links: Links, record: Any, readable: Collection[str] | None = None) -> str:
    """Which run produced a record, and when, linked to that run in Airflow; only
    "(another DAG)" for a record of a DAG the user may not read."""
    if record is None:
        return '<span class="muted">-</span>'
    if not shown(record, readable):
        return ANOTHER_DAG
    run = link(links.airflow_run(record.dag_id, record.run_id), record.run_id)
    return f"{run}<br><span class=muted>{esc(record.dag_id)} &middot; {esc(record.end)}</span>"


def reasons_html(explanation: Any, readable: Collection[str] | None = None) -> str:
    """What the next run does with the output, and why (``alamode explain``)."""
    verdict = explanation.verdict
    if verdict is Verdict.UP_TO_DATE:
        return "skipped: up to date"
    if verdict is Verdict.PER_INTERVAL:
        return f"once per interval: {explanation.intervals} recorded intervals skip"
    if verdict is Verdict.NEVER_BUILT:
        extra = f"<br><span class=muted>{esc(explanation.note)}</span>" if explanation.note else ""
        return "runs: never built" + extra
    head = "runs as a new generation: stale" if verdict is Verdict.STALE else "runs: changed"
    nearest = explanation.nearest
    if verdict is Verdict.CHANGED and shown(nearest, readable):
        head += f" since {esc(short(nearest.output_id))} (run {esc(nearest.run_id)})"
    lines = "".join(f"<li>{esc(line)}</li>" for line in explanation.reasons())
    more = f"<br><span class=muted>{esc(explanation.note)}</span>" if explanation.note else ""
    return head + (f'<ul class="reasons">{lines}</ul>' if lines else "") + more


def _state(row: TaskRow, readable: Collection[str] | None) -> str:
    status = row.status
    text = badge(status.state)
    if status.generation:
        text += f" gen {esc(status.generation)}"
    if status.stale:
        text += f"<br><span class=muted>{esc(status.stale)}</span>"
    elif status.reason:
        text += f"<br><span class=muted>{esc(status.reason)}</span>"
    if status.intervals:
        text += _intervals(status.intervals, readable)
    return text


#: The most intervals a partitioned task's row lists (the newest; the count is all).
INTERVALS_SHOWN = 50


def _intervals(records: Sequence[Any], readable: Collection[str] | None) -> str:
    newest = sorted(records, key=lambda r: r.interval or ("", ""), reverse=True)
    items = "".join(
        f"<li>{esc(' to '.join(r.interval or ('?', '?')))}: {esc(short(r.output_id))}"
        + (f" ({esc(r.run_id)})" if shown(r, readable) else f" {ANOTHER_DAG}")
        + "</li>"
        for r in newest[:INTERVALS_SHOWN]
    )
    count = f"{len(records)} interval{'' if len(records) == 1 else 's'} done"
    if len(records) > INTERVALS_SHOWN:
        count += f", the newest {INTERVALS_SHOWN} listed"
    return f"<details><summary>{count}</summary><ul>{items}</ul></details>"


def dag_page(
    links: Links,
    dag_id: str,
    rows: Sequence[TaskRow],
    *,
    drift: str = "",
    run: tuple[str, dict[str, str | None]] | None = None,
    may_rebuild: bool = True,
    readable: Collection[str] | None = None,
) -> str:
    """Every task's output; with ``run`` (its id and its task instances' states), each
    task's state in that run and a link to its instance page. ``may_rebuild``: the user
    may trigger the DAG, so each task has a Rebuild link. Records of DAGs not in
    ``readable`` (an output this DAG shares with another) are not detailed."""
    head = ["task", "output", "state", "produced by", "next run"]
    if run is not None:
        head.append(f"in run {run[0]}")
    body = []
    for row in rows:
        status = row.status
        output = link(links.output(status.output_id), short(status.output_id))
        cells = [
            f"<code>{esc(status.task)}</code>",
            f"<code>{output}</code>",
            _state(row, readable),
            produced(links, status.record, readable),
            reasons_html(row.explanation, readable)
            + (
                f"<br>{link(links.rebuild(dag_id, [status.task]), 'Rebuild...')}"
                if may_rebuild
                else ""
            ),
        ]
        if run is not None:
            run_id, states = run
            cells.append(
                link(links.instance(dag_id, run_id, status.task), states.get(status.task) or "none")
            )
        body.append(cells)
    done = sum(1 for row in rows if row.status.state in ("done", "per interval"))
    stale = sum(1 for row in rows if row.status.state == "stale")
    summary = f"{done} of {len(rows)} outputs done" + (f", {stale} stale" if stale else "")
    return page(
        f"{dag_id}: provenance",
        f"<h1>Provenance of {esc(dag_id)}</h1><p class=muted>{esc(summary)}</p>"
        + (note(esc(drift)) if drift else "")
        + table(head, body),
    )


def instance_page(
    links: Links,
    dag_id: str,
    run_id: str,
    attempt: Attempt,
    found: InstanceFacts,
    may_rebuild: bool = True,
    readable: Collection[str] | None = None,
) -> str:
    """One task instance: the record that made it skip, or what it committed and read;
    ``may_rebuild``: the user may trigger the DAG (else no Rebuild link). A record of a
    DAG not in ``readable`` is named as "(another DAG)", without its details."""
    task, record = found.task, found.record
    offer = (
        link(links.rebuild(dag_id, [task]), f"Rebuild {task}...")
        if may_rebuild
        else "Rebuilding takes the right to trigger this DAG."
    )
    parts = [
        f"<h1>{esc(task)}</h1><p class=muted>run "
        + link(links.airflow_instance(dag_id, run_id, task), run_id)
        + f" &middot; try {esc(attempt.try_number)} &middot; {badge(attempt.state)}</p>"
    ]
    if attempt.state == "skipped" and attempt.cleared is not False:
        how = "was cleared" if attempt.cleared else "was re-run (cleared or retried)"
        parts.append(
            note(
                f"<strong>{esc(CLEAR_RULE)}</strong><br>This instance {how} and found its"
                " output recorded, so it skipped again. " + offer
            )
        )
    if attempt.state == "skipped":
        parts.append("<h2>Skipped: its output was already recorded</h2>")
    elif attempt.state == "success":
        parts.append("<h2>Computed</h2>")
    else:
        parts.append(f"<h2>Not finished or not computed ({esc(attempt.state or 'none')})</h2>")
    if found.file_now is not None:
        parts.append(
            note(
                "This run used output <code>"
                + link(links.output(found.output_id), short(found.output_id))
                + "</code>; the DAG's file has changed since and gives the task <code>"
                + link(links.output(found.file_now), short(found.file_now))
                + "</code> now."
            )
        )
    parts.append(_record_facts(links, found, readable))
    if shown(record, readable) and record.inputs:
        parts.append("<h2>Read</h2>" + _inputs(links, record))
    current = found.current
    if current is not None and (record is None or current != record):
        newer = "recorded" if record is None else "has a newer generation now"
        by = (
            f" by run {esc(current.run_id)} of {esc(current.dag_id)}."
            if shown(current, readable)
            else f" by {ANOTHER_DAG}."
        )
        parts.append(
            note(
                f"The output {newer}: "
                + link(links.output(found.output_id), f"generation {current.generation}")
                + by
            )
        )
    if record is not None and may_rebuild:
        parts.append(f"<p>{offer}</p>")
    return page(f"{task} in {run_id}", "".join(parts))


def _record_facts(links: Links, found: InstanceFacts, readable: Collection[str] | None) -> str:
    record = found.record
    oid = found.output_id
    pairs = [("output", f"<code>{link(links.output(oid), oid)}</code>")]
    if record is None:
        pairs.append(("record", '<span class="muted">none for this instance</span>'))
        return facts(pairs)
    generation = link(links.output(oid, record.generation), str(record.generation))
    if not shown(record, readable):
        return facts([*pairs, ("produced by", ANOTHER_DAG), ("generation", generation)])
    pairs += [
        ("produced by", produced(links, record)),
        ("task", f"<code>{esc(record.task)}</code> (try {esc(record.try_number)})"),
        ("generation", generation + (" (a rebuild)" if record.rebuilt else "")),
        ("location", f"<code>{esc(found.location)}</code>"),
        ("command", f"<code>{esc(record.command)}</code>"),
        ("files", esc(f"{len(record.manifest)} in the manifest")),
    ]
    if record.interval:
        pairs.append(("interval", esc(" to ".join(record.interval))))
    return facts(pairs)


def _inputs(links: Links, record: Any) -> str:
    rows = [
        [
            f"<code>{esc(name)}</code>",
            f"<code>{link(links.output(oid, record.read_generation(name)), short(oid))}</code>",
            esc(record.read_generation(name)),
        ]
        for name, oid in sorted(record.inputs.items())
    ]
    return table(["input", "output", "generation read"], rows)


def output_page(
    links: Links,
    output_id: str,
    nodes: Sequence[Any],
    svg: str,
    *,
    verified: bool,
    hidden: int = 0,
    refused: str = "",
) -> str:
    """An output's lineage: the picture, then one row per distinct ancestor."""
    rows = []
    for node in nodes:
        record = node.record
        check = ""
        if node.check is not None:
            ok = node.check.value == "ok"
            check = badge(node.check.value, STATE_COLOURS["success" if ok else "failed"])
        problems = "".join(f"<br><code>{esc(p)}</code>" for p in node.problems)
        rows.append(
            [
                f"<code>{esc(record.task if record else '?')}</code>",
                "<code>"
                + link(links.output(node.output_id, node.generation), short(node.output_id))
                + "</code>",
                esc("-" if node.generation is None else node.generation),
                produced(links, record),
                check + problems,
            ]
        )
    bad = sum(1 for n in nodes if n.check is not None and n.check.value != "ok")
    if verified:
        verdict = (
            note(esc(f"verify: {bad} of {len(nodes)} outputs do not match"))
            if bad
            else f"<p>verify: all {len(nodes)} outputs match their IDs and manifests</p>"
        )
    elif refused:
        verdict = note(esc(refused))
    else:
        verdict = (
            f"<p>{link(links.output(output_id, verify=True), 'Verify')} (re-hash every file)</p>"
        )
    hid = f"<p class=muted>{hidden} outputs of DAGs you may not read are not detailed.</p>"
    return page(
        f"lineage of {short(output_id)}",
        f"<h1>Lineage of <code>{esc(short(output_id))}</code></h1>"
        f"<p class=muted><code>{esc(output_id)}</code></p>{verdict}"
        f'<div style="overflow:auto">{svg}</div>'
        + (hid if hidden else "")
        + table(["task", "output", "generation", "produced by", "check"], rows),
    )


def message_page(title: str, message: str) -> str:
    return page(title, f"<h1>{esc(title)}</h1><p>{esc(message)}</p>")
