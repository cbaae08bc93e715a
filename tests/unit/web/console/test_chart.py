"""The activity chart drawn on the server: scale, bars, and nothing unescaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from carevault.web.console.chart import Series, nice_ceiling, series_colours, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def test_the_scale_ends_on_a_round_number() -> None:
    assert [nice_ceiling(n) for n in (0, 1, 3, 7, 10, 11, 260, 4999)] == [
        1, 1, 5, 10, 10, 20, 500, 5000
    ]  # fmt: skip


def test_each_hour_is_one_bar_split_by_series_with_a_title_per_piece() -> None:
    labels = [f"{hour:02d}:00" for hour in range(24)]
    colours = series_colours(["Tuen Mun <A&B>", "Tsuen Wan"])
    series = [
        Series("Tuen Mun <A&B>", tuple([3] + [0] * 23), colours["Tuen Mun <A&B>"]),
        Series("Tsuen Wan", tuple([2] + [0] * 22 + [7]), colours["Tsuen Wan"]),
    ]
    svg = stacked_bars(labels, series, title="Accesses", description="12 in all")
    root = ET.fromstring(str(svg))  # noqa: S314 - our own output; parsing proves it escaped
    assert root.get("role") == "img"
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 3
    heights = {rect.findtext(f"{SVG}title"): float(rect.get("height", 0)) for rect in rects}
    assert sorted(heights) == ["Tsuen Wan: 2", "Tsuen Wan: 7", "Tuen Mun <A&B>: 3"]
    assert heights["Tsuen Wan: 7"] > heights["Tuen Mun <A&B>: 3"] > heights["Tsuen Wan: 2"]
    assert "style=" not in str(svg), "inline styles would need 'unsafe-inline'"


def test_no_activity_draws_an_empty_chart() -> None:
    svg = stacked_bars(["00:00"] * 24, [], title="t", description="d")
    assert ET.fromstring(str(svg)).findall(f"{SVG}rect") == []  # noqa: S314
