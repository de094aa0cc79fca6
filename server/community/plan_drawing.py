"""The site plan drawn as SVG: the uploaded picture as background, every placed access point
and device marked, the spots of alerts in red with a pulsing ring and their names, and a
legend below the picture.

A pure function of its input (no database), so it is easy to test, and below the web
rooms, so the evidence bundle (``server.access.bundle``) draws the same plan as the officer
pages (``server.web.drawings.site_plan`` marks it safe for a template). The drawing's
coordinates are the picture's pixels: a mark at ``plan_x = 0.25`` of a 1200-pixel-wide
picture is at ``x = 300``. Every mark carries a ``<title>`` and the SVG an ``aria-label``;
the words are in the request's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flask_babel import gettext as _
from markupsafe import escape

from server.core.wording import word

FONT = 'font-family="system-ui, sans-serif"'
INK, MUTED, PAPER, HIT, MARK = "#1d2330", "#5d6677", "#ffffff", "#cf222e", "#1f6feb"


@dataclass(frozen=True)
class PlanMark:
    """An access point or a device on the plan, at fractions of the picture (0..1)."""

    id: str
    name: str
    kind: StrEnum | str
    x: float
    y: float
    device: bool = False
    hit: bool = False  # where an alert happened


@dataclass(frozen=True)
class PlanPicture:
    """What the drawing shows: the picture (a URL or a ``data:`` URI) and its marks.

    ``unplaced`` names the places of alerts that are not on the plan (said in words)."""

    title: str
    href: str
    width: int
    height: int
    marks: tuple[PlanMark, ...] = ()
    unplaced: tuple[str, ...] = ()


def _num(value: float) -> str:
    return f"{value:.1f}"


def _text(x: float, y: float, words: str, size: float, **attrs: str) -> str:
    extra = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"' for name, value in attrs.items()
    )
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" {FONT}{extra}>'
        f"{escape(words)}</text>"
    )


def _shape(mark: PlanMark, x: float, y: float, r: float, fill: str) -> str:
    """An access point is a circle, a device a diamond."""
    if not mark.device:
        return (
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(r)}" fill="{fill}" '
            f'stroke="{PAPER}" stroke-width="{_num(r / 3)}"/>'
        )
    points = " ".join(
        f"{_num(px)},{_num(py)}" for px, py in ((x, y - r), (x + r, y), (x, y + r), (x - r, y))
    )
    return (
        f'<polygon points="{points}" fill="{fill}" stroke="{PAPER}" stroke-width="{_num(r / 3)}"/>'
    )


def _mark(mark: PlanMark, width: int, height: int, unit: float) -> str:
    x, y = mark.x * width, mark.y * height
    kind = word(mark.kind)
    where = f'data-x="{mark.x:.4f}" data-y="{mark.y:.4f}"'
    ident = f'data-{"device" if mark.device else "access-point"}="{escape(mark.id)}"'
    if not mark.hit:
        title = f"{mark.name} · {kind}"
        return (
            f'<g class="plan-mark" {ident} {where}><title>{escape(title)}</title>'
            f"{_shape(mark, x, y, unit, MARK)}</g>"
        )
    title = _("%(name)s · %(kind)s (this alert)", name=mark.name, kind=kind)
    r = unit * 1.6
    ring = (
        f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(r * 1.8)}" fill="none" stroke="{HIT}" '
        f'stroke-width="{_num(unit / 2)}" class="pulse">'
        f'<animate attributeName="r" values="{_num(r * 1.4)};{_num(r * 3)};{_num(r * 1.4)}" '
        'dur="1.6s" repeatCount="indefinite"/>'
        '<animate attributeName="opacity" values="1;0.2;1" dur="1.6s" repeatCount="indefinite"/>'
        "</circle>"
    )
    size = unit * 2.2
    label = _text(
        x + r * 2.2,
        y + size / 3,
        mark.name,
        size,
        fill=HIT,
        font_weight="700",
        stroke=PAPER,
        stroke_width=_num(size / 5),
        paint_order="stroke",
    )
    return (
        f'<g class="plan-mark spot" {ident} {where}><title>{escape(title)}</title>'
        f"{ring}{_shape(mark, x, y, r, HIT)}{label}</g>"
    )


def plan_svg(picture: PlanPicture, css_class: str = "site-plan") -> str:
    """The plan as SVG text (every text in it escaped): the picture, the marks (the spots of
    alerts last, so nothing covers them) and the legend below."""
    width, height = picture.width, picture.height
    unit = max(4.0, max(width, height) / 110)
    size = unit * 2.4
    line = size * 1.7
    hits = [m for m in picture.marks if m.hit]
    legend = [
        ("point", _("Access point")),
        ("device", _("Device")),
        *([("hit", _("Where the alert happened"))] if hits else []),
    ]
    notes = [_("%(name)s is not placed on the site plan.", name=name) for name in picture.unplaced]
    band = line * (1 + len(notes)) + size
    total = height + band
    body = [
        f'<rect x="0" y="0" width="{width}" height="{_num(total)}" fill="{PAPER}"/>',
        f'<image class="plan-picture" href="{escape(picture.href)}" x="0" y="0" '
        f'width="{width}" height="{height}" preserveAspectRatio="none"/>',
    ]
    body += [_mark(m, width, height, unit) for m in picture.marks if not m.hit]
    body += [_mark(m, width, height, unit) for m in hits]
    # The legend, in the band below the picture.
    y = height + line
    x = unit * 2
    body.append('<g class="legend">')
    for key, words in legend:
        sample = PlanMark(id="", name="", kind="", x=0, y=0, device=key == "device")
        fill = HIT if key == "hit" else MARK
        body.append(_shape(sample, x + unit, y - size / 3, unit, fill))
        body.append(_text(x + unit * 3, y, words, size, fill=INK))
        x += unit * 6 + len(words) * size * (0.6 if words.isascii() else 1.0)
    for n, note in enumerate(notes):
        body.append(_text(unit * 2, y + line * (n + 1), note, size, fill=HIT, class_="unplaced"))
    body.append("</g>")
    names = sorted(m.name for m in hits)
    label = (
        _("Site plan of %(name)s; marked: %(marked)s", name=picture.title, marked=", ".join(names))
        if names
        else _("Site plan of %(name)s", name=picture.title)
    )
    return (
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" '
        'role="img" '
        f'viewBox="0 0 {width} {_num(total)}" data-width="{width}" data-height="{height}" '
        f'aria-label="{escape(label)}">' + "".join(body) + "</svg>"
    )
