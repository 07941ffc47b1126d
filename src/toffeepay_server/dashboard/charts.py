"""Bar charts drawn on the server as SVG, each with a title and a description for screen readers.

Only numbers and escaped text go into the markup; the page's CSP allows no inline script
or style, so colours come from classes in the stylesheet.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH = 600
HEIGHT = 180
LEFT = 44
BOTTOM = 22
TOP = 8
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]
    css_class: str


def _nice_max(value: float) -> float:
    """A round top for the axis: 1, 2, 5, 10, 20, 50, ..."""
    if value <= 0:
        return 1
    step = 1.0
    while True:
        for factor in (1, 2, 5):
            if value <= step * factor:
                return step * factor
        step *= 10


def bar_chart(
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    *,
    summary: str,
    label: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """Grouped bars, one group per day. `summary` is the text alternative of the whole chart."""
    uid = next(_ids)
    top = _nice_max(max((v for s in series for v in s.values), default=0))
    plot_w = WIDTH - LEFT - 4
    plot_h = HEIGHT - TOP - BOTTOM
    group = plot_w / max(len(days), 1)
    bar = max(group * 0.8 / max(len(series), 1), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart{uid}-title chart{uid}-desc">',
        f'<title id="chart{uid}-title">{escape(title)}</title>',
        f'<desc id="chart{uid}-desc">{escape(summary)}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(label(top * fraction))}</text>"
        )
    for i, day in enumerate(days):
        x0 = LEFT + i * group + group * 0.1
        for j, s in enumerate(series):
            value = s.values[i]
            h = plot_h * (value / top) if top else 0
            if h > 0:
                parts.append(
                    f'<rect class="{s.css_class}" x="{x0 + j * bar:.1f}" y="{TOP + plot_h - h:.1f}" '
                    f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(day.isoformat())}: '
                    f"{escape(s.name)} {escape(label(value))}</title></rect>"
                )
        if (i % 7 == 0 and i <= len(days) - 4) or i == len(days) - 1:
            last = i == len(days) - 1
            x = WIDTH - 4 if last else x0 + group * 0.4
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{"end" if last else "middle"}">'
                f"{day.strftime('%m-%d')}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))
