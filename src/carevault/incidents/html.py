"""The scope as one self-contained HTML file a CEO can read the same day: the numbers,
inline SVG charts (exposure over time, people by clinic and by category) and the lines
with their evidence. No scripts, no external assets; every text is escaped."""

from __future__ import annotations

from datetime import date, timedelta
from html import escape
from typing import Any

from carevault.incidents.model import TIERS
from carevault.incidents.report import lines_of, moved

COLOURS = {
    "confirmed": "#b3261e",
    "decrypted": "#e8710a",
    "at_rest_only": "#5f6368",
    "potentially": "#1a73e8",
}
LABELS = {
    "confirmed": "Confirmed (shown to the attacker)",
    "decrypted": "Decrypted (keys unwrapped)",
    "at_rest_only": "At rest only (encrypted copy)",
    "potentially": "Potentially (reachable, not read)",
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#202124;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #dadce0;padding:3px 6px}
.big{display:flex;gap:1em}.big div{border:1px solid #dadce0;padding:.6em 1em;border-radius:6px}
.big b{font-size:1.8em;display:block}.muted{color:#5f6368}svg text{font-size:11px}
"""


def to_html(document: dict[str, Any]) -> str:
    incident = document["incident"]
    counts = document["counts"]
    people = counts["people"]
    boxes = "".join(
        f'<div style="border-color:{COLOURS[t]}"><b>{people[t]}</b>{escape(LABELS[t])}</div>'
        for t in TIERS
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Incident {incident['id']}: scope</title><style>{_STYLE}</style></head><body>",
        f"<h1>Incident {incident['id']}: {escape(incident['title'])}</h1>",
        f"<p class='muted'>Status {escape(incident['status'])}; window "
        f"{escape(incident['since'])} to {escape(incident['until'] or 'now')}; "
        f"report generated {escape(incident['generated_at'])} ({escape(incident['engine'])}).</p>",
        f"<p><b>{counts['notifiable']}</b> people had their data shown or decrypted "
        f"(each person counted once).</p><div class='big'>{boxes}</div>",
        _compromised(incident["compromised"]),
        _changed(document.get("changed") or []),
        _registered(document.get("registered") or []),
        _changes(incident.get("changes") or {}),
        "<h2>Exposure over time</h2>",
        "<p class='muted'>People first exposed, cumulative, by tier.</p>",
        _legend(),
        _timeline(counts["by_day"]),
        "<h2>People by clinic</h2>",
        _bars(counts["by_clinic"]),
        "<h2>People by data category</h2>",
        _bars(counts["by_category"]),
        _evidence(incident.get("checkpoints") or {}),
        "<h2>Patients</h2>",
        _lines(document),
        "</body></html>",
    ]
    return "\n".join(parts)


def _registered(lines: list[dict[str, Any]]) -> str:
    if not lines:
        return ""
    return (
        f"<h2>Access given or taken</h2><p><b>{len(lines)}</b> people were registered at a "
        "clinic, moved to another home or had a registration ended by a compromised "
        "principal in the window (listed below as <i>registered</i>): a clinic given them "
        "reaches their records until an officer reviews each registration, and one they "
        "were taken from no longer does.</p>"
    )


def _changed(lines: list[dict[str, Any]]) -> str:
    if not lines:
        return ""
    return (
        f"<h2>Records changed</h2><p><b>{len(lines)}</b> people's records were written "
        "(made, changed or deleted) by a compromised principal in the window (listed "
        "below as <i>changed</i>): check them against a backup. Their notices take no "
        "contact details from those writes.</p>"
    )


def _legend() -> str:
    items = "".join(
        f"<span style='margin-right:1.2em'><span style='display:inline-block;width:.9em;"
        f"height:.9em;background:{COLOURS[tier]};margin-right:.3em'></span>"
        f"{escape(LABELS[tier])}</span>"
        for tier in TIERS
    )
    return f"<p>{items}</p>"


def _compromised(compromised: dict[str, Any]) -> str:
    items = []
    for key, value in compromised.items():
        if isinstance(value, list) and value:
            items.append(f"<li>{escape(key)}: {escape(', '.join(value))}</li>")
        elif value is True:
            items.append(f"<li>{escape(key.replace('_', ' '))}</li>")
    return f"<h2>Believed compromised</h2><ul>{''.join(items)}</ul>"


def _changes(changes: dict[str, Any]) -> str:
    if not changes or changes.get("first_run"):
        return ""
    rows = [
        f"<li>{escape(tier)}: {len(change['added'])} added, {len(change['removed'])} removed, "
        f"{len(change['categories_changed'])} with other categories</li>"
        for tier, change in changes.items()
        if isinstance(change, dict)
    ]
    since = escape(str(changes.get("previous_run", "")))
    body = "".join(rows) or "<li>nothing changed</li>"
    return f"<h2>Changed since the run of {since}</h2><ul>{body}</ul>"


def _timeline(by_day: dict[str, dict[str, int]]) -> str:
    """Cumulative people first exposed, one line per tier, over the days of the window."""
    days = sorted({day for tier in TIERS for day in by_day[tier]})
    if not days:
        return "<p class='muted'>No dated exposure.</p>"
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    width, height, pad = 760, 220, 40
    totals = {t: sum(by_day[t].values()) for t in TIERS}
    top = max([1, *totals.values()])
    step = (width - 2 * pad) / max(1, len(span) - 1)
    shapes = []
    for tier in TIERS:
        if not by_day[tier]:
            continue
        running, points = 0, []
        for n, day in enumerate(span):
            running += by_day[tier].get(day.isoformat(), 0)
            x = pad + n * step
            y = height - pad - running / top * (height - 2 * pad)
            points.append(f"{x:.1f},{y:.1f}")
        shapes.append(
            f"<polyline fill='none' stroke='{COLOURS[tier]}' stroke-width='2' "
            f"points='{' '.join(points)}'><title>{escape(LABELS[tier])}</title></polyline>"
        )
    axis = (
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' "
        "stroke='#5f6368'/>"
        f"<text x='{pad}' y='{height - pad + 16}'>{span[0].isoformat()}</text>"
        f"<text x='{width - pad}' y='{height - pad + 16}' text-anchor='end'>"
        f"{span[-1].isoformat()}</text><text x='4' y='{pad}'>{top}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img' aria-label='people exposed over time'>{axis}{''.join(shapes)}</svg>"
    )


def _bars(by_key: dict[str, dict[str, int]]) -> str:
    """Stacked horizontal bars: one per key, a segment per tier."""
    keys = sorted({key for tier in TIERS for key in by_key[tier]})
    if not keys:
        return "<p class='muted'>None.</p>"
    totals = {key: sum(by_key[tier].get(key, 0) for tier in TIERS) for key in keys}
    top = max(totals.values())
    width, row, label = 760, 22, 170
    rows = []
    for n, key in enumerate(keys):
        y, x = n * row + 4, float(label)
        for tier in TIERS:
            value = by_key[tier].get(key, 0)
            if not value:
                continue
            length = value / top * (width - label - 60)
            rows.append(
                f"<rect x='{x:.1f}' y='{y}' width='{length:.1f}' height='{row - 6}' "
                f"fill='{COLOURS[tier]}'><title>{escape(LABELS[tier])}: {value}</title></rect>"
            )
            x += length
        rows.append(f"<text x='0' y='{y + 12}'>{escape(key)}</text>")
        rows.append(f"<text x='{x + 4:.1f}' y='{y + 12}'>{totals[key]}</text>")
    height = len(keys) * row + 8
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img'>{''.join(rows)}</svg>"
    )


def _evidence(checkpoints: dict[str, Any]) -> str:
    notes = [
        f"<h3>{escape(name)} ledger, tree size {found['size']}</h3>"
        f"<pre>{escape(found['note'])}</pre>"
        for name, found in checkpoints.items()
        if found
    ]
    if not notes:
        return ""
    return (
        "<h2>Evidence</h2><p>Each line below cites ledger positions; these signed "
        "checkpoints hold them, and an inclusion proof of each can be checked with "
        "<code>carevault audit</code> or the standalone verifier.</p>" + "".join(notes)
    )


def _lines(document: dict[str, Any], limit: int = 2000) -> str:
    rows = []
    shown: dict[str, int] = {}
    for tier, line in lines_of(document):
        shown[tier] = shown.get(tier, 0) + 1
        if shown[tier] <= limit:
            evidence = " ".join(str(seq) for seq in line["evidence"][:20])
            more = len(line["evidence"]) - 20
            rows.append(
                f"<tr><td>{escape(tier)}</td><td>{escape(line['patient'])}</td>"
                f"<td>{escape(', '.join(line['categories']))}</td>"
                f"<td>{escape(', '.join(line['clinics']))}"
                f"{f' ({escape(moved(line))})' if moved(line) else ''}</td>"
                f"<td>{escape(line['first'] or '')}</td><td>{escape(line['last'] or '')}</td>"
                f"<td>{escape(line['ledger'] or '')} {evidence}"
                f"{f' (+{more})' if more > 0 else ''}</td></tr>"
            )
    head = (
        "<tr><th>tier</th><th>patient</th><th>categories</th><th>clinics</th><th>first</th>"
        "<th>last</th><th>evidence (ledger positions)</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"
