"""A stacked bar chart as SVG, drawn on the server: no script, nothing for the
Content-Security-Policy to allow, and the same figures given as a table beside it.

Pure: numbers and labels in, markup out. Colours come from a palette with enough
contrast against white for bars (WCAG 1.4.11, 3:1), and each series also has its
own entry in the legend and the table, so colour is never the only cue.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

PALETTE = (
    "#1f5fa8",
    "#b3541e",
    "#2e7d32",
    "#8e24aa",
    "#c2185b",
    "#00695c",
    "#5d4037",
    "#455a64",
    "#6d6d00",
)
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[int, ...]
    colour: str


def series_colours(labels: list[str]) -> dict[str, str]:
    return {label: PALETTE[index % len(PALETTE)] for index, label in enumerate(labels)}


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10^n at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_bars(
    bucket_labels: list[str], series: list[Series], *, title: str, description: str
) -> Markup:
    """An SVG of one bar per bucket, each split by series; labels every third bucket."""
    buckets = len(bucket_labels)
    totals = [sum(item.values[index] for item in series) for index in range(buckets)]
    top = nice_ceiling(max(totals, default=0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(buckets, 1)
    bar = slot * 0.72
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'role="img" aria-labelledby="chart-title chart-desc" class="chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(description)}</desc>',
    ]
    intervals = next(n for n in (5, 4, 2, 1) if top % n == 0)
    for tick in range(intervals + 1):
        value = top * tick // intervals
        y = TOP + plot_height - plot_height * tick / intervals
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#d0d4d9" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#333">{value}</text>'
        )
    for index in range(buckets):
        x = LEFT + slot * index + (slot - bar) / 2
        base = float(TOP + plot_height)
        for item in series:
            count = item.values[index]
            if not count:
                continue
            height = plot_height * count / top
            base -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{item.colour}"><title>{escape(item.label)}: {count}</title></rect>'
            )
        if index % 3 == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'font-size="11" fill="#333">{escape(bucket_labels[index])}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_height}" '
        f'y2="{TOP + plot_height}" stroke="#333" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it is escaped above
