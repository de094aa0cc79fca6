"""Pictures the officer pages draw on the server as inline SVG: a schematic map of a
community, the uploaded site plan with its marks, a heat map and a stacked bar chart.

Pure functions of their inputs (no database), so they are easy to test. The site plan
(``site_plan``, drawn by ``server.community.plan_drawing``) places access points and devices
where staff put them; a community without one gets the schematic: the community's
boundary with its perimeter gates on the edge, one block per building with its doors,
and one dashed block per other zone. Every mark carries a ``<title>`` (a tooltip and
what a screen reader says) and the SVG an ``aria-label``. Their words are in the request's
language (English outside a request); names and labels come in already in words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _
from flask_babel import ngettext
from markupsafe import Markup, escape

from server.community.plan_drawing import PlanPicture, plan_svg
from server.core.wording import word

FONT = 'font-family="system-ui, sans-serif"'
INK, MUTED, LINE, PAPER = "#1d2330", "#5d6677", "#c9d1dc", "#ffffff"
HIT = "#cf222e"
# One colour per alert type (in AlertType's order), distinguishable side by side.
SERIES_COLOURS = (
    "#1f6feb",
    "#cf222e",
    "#bf8700",
    "#8250df",
    "#1a7f37",
    "#e16f24",
    "#0a7ea4",
    "#bf3989",
    "#57606a",
    "#6e40c9",
    "#2da44e",
    "#a40e26",
    "#953800",
    "#116329",
)


def _text(x: float, y: float, words: str, *, size: int = 12, **attrs: str) -> str:
    extra = "".join(f' {name.replace("_", "-")}="{escape(value)}"' for name, value in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" {FONT}{extra}>{escape(words)}</text>'


def _fit(words: str, width: float, size: int = 12) -> str:
    """``words`` cut with an ellipsis to about ``width`` pixels (CJK counted double)."""
    budget = width / (size * 0.55)
    used, out = 0.0, []
    for char in words:
        used += 2 if ord(char) > 0x2E80 else 1
        if used > budget:
            return "".join(out).rstrip() + "…"
        out.append(char)
    return words


def _svg(width: float, height: float, label: str, body: list[str], css_class: str) -> Markup:
    # Every text in ``body`` went through ``escape`` (``_text``, the titles): safe to mark.
    return Markup(  # noqa: S704
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'aria-label="{escape(label)}">' + "".join(body) + "</svg>"
    )


# The community map --------------------------------------------------------------------------


@dataclass(frozen=True)
class MapPoint:
    """An access point on the map."""

    id: str
    name: str
    kind: str  # door | gate | barrier (an AccessPointKind)


@dataclass(frozen=True)
class MapBlock:
    """A building with its doors, or a zone (``dashed``) with its access points."""

    label: str
    points: tuple[MapPoint, ...] = ()
    dashed: bool = False


@dataclass(frozen=True)
class SiteMap:
    """What the map shows: the perimeter's gates and the blocks inside."""

    title: str
    perimeter: tuple[MapPoint, ...] = ()
    blocks: tuple[MapBlock, ...] = ()
    highlighted: frozenset[str] = field(default_factory=frozenset)


_MAP_WIDTH, _MARGIN, _GAP, _ROW = 720, 14, 14, 22


def _marker(point: MapPoint, x: float, y: float, hit: bool) -> str:
    """A door is a circle, a gate or barrier a square; a highlighted one is red and ringed."""
    fill, stroke = (HIT, HIT) if hit else (PAPER, MUTED)
    size = 7 if hit else 5
    if point.kind == "door":
        shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size}" fill="{fill}" stroke="{stroke}"/>'
    else:
        shape = (
            f'<rect x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size}" height="{2 * size}" '
            f'fill="{fill}" stroke="{stroke}"/>'
        )
    ring = (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="13" fill="none" stroke="{HIT}" '
        'stroke-width="2" class="ring"/>'
        if hit
        else ""
    )
    title = (
        _("%(name)s · %(kind)s (this alert)", name=point.name, kind=word(point.kind))
        if hit
        else f"{point.name} · {word(point.kind)}"
    )
    return (
        f'<g class="ap{" hit" if hit else ""}" data-access-point="{escape(point.id)}">'
        f"<title>{escape(title)}</title>{ring}{shape}</g>"
    )


def site_map(plan: SiteMap) -> Markup:
    """The community as a schematic SVG, the highlighted access points in red."""
    hits = plan.highlighted
    inner_left, inner_width = _MARGIN + _GAP, _MAP_WIDTH - 2 * (_MARGIN + _GAP)
    body: list[str] = []
    top = _MARGIN + 18
    # Gates along the top edge of the boundary, their names below them.
    perimeter = list(plan.perimeter)
    band = 40 if perimeter else 12
    cols = max(1, min(len(blocks := list(plan.blocks)), 3))
    block_width = (inner_width - (cols - 1) * _GAP) / cols
    rows = [blocks[i : i + cols] for i in range(0, len(blocks), cols)]
    heights = [max(34 + max(1, len(b.points)) * _ROW for b in row) for row in rows]
    inside = sum(heights) + _GAP * max(0, len(rows) - 1)
    boundary_height = band + (inside or 30) + _GAP
    height = top + boundary_height + _MARGIN
    body.append(
        f'<rect x="{_MARGIN}" y="{top}" width="{_MAP_WIDTH - 2 * _MARGIN}" '
        f'height="{boundary_height:.0f}" rx="14" fill="#f5f7fa" stroke="{MUTED}" '
        'stroke-width="2" class="boundary"/>'
    )
    body.append(_text(_MARGIN, _MARGIN + 8, plan.title, size=13, font_weight="600", fill=INK))
    if perimeter:
        step = inner_width / len(perimeter)
        for n, point in enumerate(perimeter):
            x = inner_left + step * (n + 0.5)
            hit = point.id in hits
            body.append(_marker(point, x, top, hit))
            body.append(
                _text(
                    x,
                    top + 24,
                    _fit(point.name, step - 6, 11),
                    size=11,
                    text_anchor="middle",
                    fill=HIT if hit else INK,
                    font_weight="600" if hit else "400",
                )
            )
    y = top + band
    for row, row_height in zip(rows, heights, strict=True):
        for n, block in enumerate(row):
            x = inner_left + n * (block_width + _GAP)
            hit_block = any(point.id in hits for point in block.points)
            stroke = HIT if hit_block else (MUTED if block.dashed else LINE)
            dash = ' stroke-dasharray="6 4"' if block.dashed else ""
            body.append(
                f'<g class="block{" hit" if hit_block else ""}">'
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{block_width:.1f}" '
                f'height="{row_height:.0f}" rx="8" fill="{PAPER}" stroke="{stroke}" '
                f'stroke-width="{3 if hit_block else 1.5}"{dash}/>'
            )
            body.append(
                _text(
                    x + 10,
                    y + 20,
                    _fit(block.label, block_width - 20, 13),
                    size=13,
                    font_weight="600",
                    fill=INK,
                )
            )
            if not block.points:
                body.append(_text(x + 10, y + 20 + _ROW, _("no access point"), size=11, fill=MUTED))
            for m, point in enumerate(block.points):
                py = y + 20 + _ROW * (m + 1) - 4
                hit = point.id in hits
                body.append(_marker(point, x + 20, py, hit))
                body.append(
                    _text(
                        x + 38,
                        py + 4,
                        _fit(point.name, block_width - 48, 12),
                        fill=HIT if hit else INK,
                        font_weight="600" if hit else "400",
                    )
                )
            body.append("</g>")
        y += row_height + _GAP
    if not blocks:
        body.append(
            _text(inner_left, top + band + 16, _("No buildings recorded."), size=12, fill=MUTED)
        )
    named = sorted(
        point.name
        for point in [*perimeter, *(p for b in blocks for p in b.points)]
        if point.id in hits
    )
    label = (
        _("Map of %(name)s; marked: %(marked)s", name=plan.title, marked=", ".join(named))
        if named
        else _("Map of %(name)s", name=plan.title)
    )
    return _svg(_MAP_WIDTH, height, label, body, "site-map")


# Heat map: events by hour of day and access point -------------------------------------------


def _shade(count: int, top: int) -> str:
    """White-blue for few, deep blue for the busiest cell (square root: quiet hours show)."""
    if count <= 0 or top <= 0:
        return "#f0f3f7"
    share = math.sqrt(count / top)
    low, high = (219, 232, 255), (11, 61, 145)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map(title: str, rows: Sequence[tuple[str, Sequence[int]]]) -> Markup:
    """One row per access point, one column per hour of the day (24 counts a row)."""
    label_width, cell, gap, top = 170, 22, 2, 34
    width = label_width + 24 * (cell + gap) + 16
    height = top + max(1, len(rows)) * (cell + gap) + 56
    busiest = max((max(counts) for _, counts in rows if counts), default=0)
    body = [_text(0, 14, title, size=13, font_weight="600", fill=INK)]
    for hour in range(0, 24, 3):
        x = label_width + hour * (cell + gap) + cell / 2
        body.append(_text(x, top - 6, f"{hour:02d}", size=11, text_anchor="middle", fill=MUTED))
    for n, (name, counts) in enumerate(rows):
        y = top + n * (cell + gap)
        body.append(
            _text(
                label_width - 8, y + 15, _fit(name, label_width - 12), text_anchor="end", fill=INK
            )
        )
        for hour, count in enumerate(counts):
            x = label_width + hour * (cell + gap)
            body.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" rx="3" '
                f'fill="{_shade(count, busiest)}" data-count="{count}">'
                f"<title>{escape(_cell_title(name, hour, count))}</title></rect>"
            )
    if not rows:
        body.append(_text(label_width, top + 15, _("No access points."), fill=MUTED))
    # Legend: the scale from none to the busiest hour.
    y = height - 30
    body.append(_text(label_width, y + 12, "0", size=11, fill=MUTED, text_anchor="end"))
    for step in range(10):
        shade = _shade(round(busiest * (step + 1) / 10), busiest) if busiest else _shade(0, 0)
        body.append(
            f'<rect x="{label_width + 6 + step * 16}" y="{y}" width="16" height="14" '
            f'fill="{shade}"/>'
        )
    body.append(
        _text(
            label_width + 172,
            y + 12,
            ngettext(
                "%(num)s event in the busiest hour", "%(num)s events in the busiest hour", busiest
            ),
            size=11,
            fill=MUTED,
        )
    )
    total = sum(sum(counts) for _, counts in rows)
    label = ngettext("%(title)s: %(num)s event", "%(title)s: %(num)s events", total, title=title)
    return _svg(width, height, label, body, "heat-map")


def _cell_title(name: str, hour: int, count: int) -> str:
    """``North gate, 21:00-21:59: 3 events``."""
    return ngettext(
        "%(name)s, %(start)s-%(end)s: %(num)s event",
        "%(name)s, %(start)s-%(end)s: %(num)s events",
        count,
        name=name,
        start=f"{hour:02d}:00",
        end=f"{hour:02d}:59",
    )


# Bar chart: alerts by type and day -----------------------------------------------------------


def _nice_top(value: int) -> int:
    """The axis maximum: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 5:
        return max(value, 1)
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * power >= value:
            return factor * power
    return 10 * power


def bar_chart(
    title: str,
    days: Sequence[date],
    series: Sequence[tuple[str, Sequence[int]]],
    colours: dict[str, str],
    labels: Mapping[str, str] | None = None,
) -> Markup:
    """Stacked bars, one per day; ``series`` is (name, one count per day) in stacking order.

    ``labels`` names each series in words (by default its name, spaces for underscores)."""

    def label_of(name: str) -> str:
        return (labels or {}).get(name) or name.replace("_", " ")

    left, right, top, plot_height = 44, 16, 30, 180
    width = 720
    plot_width = width - left - right
    slot = plot_width / max(1, len(days))
    bar = max(2.0, min(36.0, slot * 0.7))
    totals = [sum(counts[n] for _, counts in series) for n in range(len(days))]
    axis_top = _nice_top(max(totals, default=0))
    scale = plot_height / axis_top
    body = [_text(0, 14, title, size=13, font_weight="600", fill=INK)]
    # Whole numbers only: every count up to 5, then fifths of 10, 20, 50, 100 ...
    ticks = range(axis_top + 1) if axis_top <= 5 else [axis_top * k // 5 for k in range(6)]
    for tick in ticks:
        y = top + plot_height - tick * scale
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{LINE}"/>'
        )
        body.append(_text(left - 6, y + 4, f"{tick:g}", size=11, text_anchor="end", fill=MUTED))
    every = max(1, math.ceil(len(days) / 12))  # at most about 12 day labels
    for n, day in enumerate(days):
        x = left + slot * n + (slot - bar) / 2
        base = top + plot_height
        for name, counts in series:
            count = counts[n]
            if not count:
                continue
            h = count * scale
            base -= h
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colours.get(name, MUTED)}" '
                f'data-type="{escape(name)}" data-count="{count}">'
                f"<title>{day.isoformat()} · {escape(label_of(name))}: {count}"
                "</title></rect>"
            )
        if n % every == 0:
            body.append(
                _text(
                    x + bar / 2,
                    top + plot_height + 16,
                    day.strftime("%m-%d"),
                    size=11,
                    text_anchor="middle",
                    fill=MUTED,
                )
            )
    # Legend below the plot, wrapping every four entries.
    legend_top = top + plot_height + 34
    for n, (name, _counts) in enumerate(series):
        x = left + (n % 4) * 165
        y = legend_top + (n // 4) * 18
        body.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" rx="2" '
            f'fill="{colours.get(name, MUTED)}"/>'
        )
        body.append(_text(x + 18, y + 11, label_of(name), size=12, fill=INK))
    if not series:
        body.append(
            _text(left + 8, top + plot_height / 2, _("No alerts in this period."), fill=MUTED)
        )
    height = legend_top + max(1, math.ceil(len(series) / 4)) * 18 + 8
    label = ngettext(
        "%(title)s: %(num)s alert", "%(title)s: %(num)s alerts", sum(totals), title=title
    )
    return _svg(width, height, label, body, "bar-chart")


# The site plan -------------------------------------------------------------------------------


def site_plan(picture: PlanPicture) -> Markup:
    """The community's uploaded site plan with its access points and devices, the alerts'
    spots in red (``server.community.plan_drawing``, which the evidence bundle draws too)."""
    # Every text in it went through ``escape``: safe to mark.
    return Markup(plan_svg(picture))  # noqa: S704
