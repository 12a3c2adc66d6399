"""The rebuild pages: the confirmation form and the page of the run it created. Pure
renderers, as ``pages``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alamode_airflow.view.html import attr, esc, link, note, page, path
from alamode_airflow.view.pages import Links


@dataclass(frozen=True)
class PerInterval:
    """The partitioned tasks a rebuild computes, and the data interval (datetimes) the
    run gets: they rebuild their output of that interval only."""

    tasks: Sequence[str]
    interval: tuple[Any, Any] | None

    def html(self) -> str:
        names = esc(", ".join(self.tasks))
        if self.interval is None:
            return note(f"{names}: partitioned, but a run triggered now gets no data interval.")
        start, end = (when.isoformat() for when in self.interval)
        return note(
            f"{names} {'is' if len(self.tasks) == 1 else 'are'} partitioned: the run rebuilds"
            f" the interval <strong>{esc(start)} to {esc(end)}</strong> only (the interval"
            " Airflow gives a run triggered now); other intervals keep their outputs."
        )


def confirm_page(
    links: Links,
    dag_id: str,
    tasks: Sequence[str],
    rebuilt: int,
    token: str,
    per_interval: PerInterval | None = None,
) -> str:
    """The rebuild confirmation form (POSTed to the same URL)."""
    names = ", ".join(tasks)
    hidden = "".join(f'<input type="hidden" name="task" value="{attr(t)}">' for t in tasks)
    return page(
        f"rebuild {names}?",
        f"<h1>Rebuild {esc(names)} of {esc(dag_id)}?</h1>"
        f"<p>A new run computes {esc(names)} again, and everything downstream of it"
        f" ({rebuilt} tasks in all), as new generations beside the recorded ones: nothing"
        " recorded is deleted or overwritten, and readers get the new generation.</p>"
        + (per_interval.html() if per_interval else "")
        + f'<form method="post" action="{attr(links.root + path("dags", dag_id, "rebuild"))}">'
        f'{hidden}<input type="hidden" name="csrf" value="{attr(token)}">'
        "<button type=submit>Trigger the rebuild run</button></form>",
    )


def triggered_page(links: Links, dag_id: str, run_id: str, tasks: Sequence[str], paused: bool):
    wait = note("The DAG is paused: the run starts once it is unpaused.") if paused else ""
    return page(
        "rebuild triggered",
        "<h1>Rebuild run created</h1><p>Run "
        + link(links.airflow_run(dag_id, run_id), run_id)
        + f" of {esc(dag_id)} rebuilds {esc(', '.join(tasks))}.</p>"
        + wait,
    )
