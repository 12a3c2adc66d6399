"""The pieces every provenance page is made of: escaping, the page shell and its inline
style, badges and links. Pure functions of their arguments: no Airflow, no store.

Everything that reaches a page from outside (task names, run ids, record fields,
reasons) goes through ``esc`` or ``attr``; the renderers build HTML only from these
pieces, so a task named ``<script>`` is shown as text. Pages load nothing from
elsewhere (no CDN, no script): they are shown inside Airflow's UI, in an iframe.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote, urlencode

#: Sent with every page. The pages need only their own inline style and same-origin
#: forms; they run no script and load nothing. Airflow's UI frames them from its own
#: origin, and no other site may frame them (a rebuild button under a decoy).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: Airflow's own state colours (its UI's defaults), for the state badges.
STATE_COLOURS = {
    "success": "#008000",
    "failed": "#ff0000",
    "skipped": "#e60076",
    "upstream_failed": "#ffa500",
    "running": "#00ff00",
    "queued": "#808080",
    "scheduled": "#d2b48c",
    "up_for_retry": "#ffd700",
    "removed": "#d3d3d3",
    "deferred": "#9370db",
    # Ours: what the store says of an output.
    "done": "#008000",
    "per interval": "#008000",
    "stale": "#d97706",
    "missing": "#808080",
    "corrupt": "#ff0000",
    "vanished": "#ff0000",
    "newer": "#ff0000",
    "incomplete": "#d97706",
}

STYLE = """
:root { color-scheme: light dark; --fg: #1a202c; --muted: #5a6472; --line: #e2e8f0;
  --bg: #ffffff; --head: #f7fafc; --link: #0b6bcb; --warn: #fff7e6; --warnline: #f0b429; }
@media (prefers-color-scheme: dark) { :root { --fg: #e2e8f0; --muted: #a0aec0;
  --line: #2d3748; --bg: #1a202c; --head: #232b3a; --link: #63b3ed; --warn: #3a2f14;
  --warnline: #b7791f; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); margin: 16px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; }
a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--head); font-weight: 600; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; color: #fff;
  font-size: 12px; font-weight: 600; white-space: nowrap; }
.note { background: var(--warn); border-left: 4px solid var(--warnline); padding: 8px 12px;
  margin: 12px 0; }
dl { display: grid; grid-template-columns: max-content auto; gap: 4px 16px; }
dt { color: var(--muted); } dd { margin: 0; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid #0b6bcb;
  background: #0b6bcb; color: #fff; cursor: pointer; }
ul.reasons { margin: 0; padding-left: 18px; }
svg .node rect { fill: var(--head); stroke: var(--muted); }
svg .node.root rect { stroke: var(--link); stroke-width: 2; }
svg .node.bad rect { stroke: #ff0000; stroke-width: 2; }
svg .node text { fill: var(--fg); font: 12px system-ui, sans-serif; }
svg .node text.title { font-weight: 600; }
svg .edge { stroke: var(--muted); fill: none; }
"""


def esc(value: object) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value), quote=False)


def attr(value: object) -> str:
    """``value`` as the inside of a double-quoted attribute."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """A whole page: ``title`` (text) and ``body`` (HTML made of escaped pieces)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def badge(state: str | None, colour: str | None = None) -> str:
    """A state as Airflow colours it (or in ``colour``)."""
    state = state or "none"
    colour = colour or STATE_COLOURS.get(state, "#808080")
    return f'<span class="badge" style="background:{colour}">{esc(state)}</span>'


def link(href: str, text: str) -> str:
    """A link. It opens in the frame that shows the page: Airflow's UI sandboxes its
    frames without ``allow-top-navigation``, so a link to the whole window is blocked."""
    return f'<a href="{attr(href)}">{esc(text)}</a>'


def path(*parts: str, query: dict[str, object] | None = None) -> str:
    """A URL path from ``parts``, each quoted whole (a run id holds ``:`` and ``+``)."""
    url = "/" + "/".join(quote(str(part), safe="") for part in parts)
    given = {k: v for k, v in (query or {}).items() if v is not None and v != []}
    if given:
        url += "?" + urlencode(given, doseq=True)
    return url


def table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table of HTML cells (already escaped) under the text headings ``head``."""
    heading = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{heading}</tr></thead><tbody>{body}</tbody></table>"


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (text label, HTML value)."""
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def note(text_html: str) -> str:
    return f'<div class="note">{text_html}</div>'
