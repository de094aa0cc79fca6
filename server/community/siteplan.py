"""The community's site plan: the picture staff upload, and where things are on it.

One picture per community (``SitePlan``: PNG or JPEG, checked with Pillow, at most
``MAX_BYTES`` and ``MAX_SIDE`` pixels a side). Access points and devices are placed on it by
``plan_x``/``plan_y``, fractions of the picture's width and height from the top left, so a
new picture of the same plan at another size keeps every mark. An alert's spot is its
device's own position, else its access point's (``spot_of``).

Staff and admins of the community upload, replace and remove it (audited); officers and
staff of the community read it; residents find none (404). ``plan_picture`` gathers what
the drawing (``server.community.plan_drawing``) needs; the officer pages and the evidence
bundle draw it.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterable, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select

from server.community.plan_drawing import PlanMark, PlanPicture
from server.core import audit
from server.core.errors import Invalid, NotFound, PayloadTooLarge
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessPoint, Alert, Community, Device, SitePlan, UserRole, utcnow

MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 8000
MIN_SIDE = 16
# Pillow's format name -> the media type stored and served.
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}


def read_picture(data: bytes) -> tuple[str, int, int]:
    """``(content_type, width, height)`` of an uploaded plan; ``Invalid`` (422, with
    ``reason``) or ``PayloadTooLarge`` (413) when it is not one the server keeps."""
    if not data:
        raise Invalid(
            _l("The site plan file is empty."),
            errors={"image": [_l("The file is empty.")]},
            reason="empty",
        )
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(
            _l("A site plan may be at most %(mb)s MB.", mb=MAX_BYTES // (1024 * 1024)),
            reason="too_many_bytes",
        )
    try:
        # The header gives the size first: a picture too large is refused before anything is
        # decoded. Then ``verify`` walks a PNG's chunks, and decoding the pixels finds what it
        # cannot (a JPEG cut short).
        with Image.open(io.BytesIO(data)) as picture:
            kind, (width, height) = picture.format, picture.size
            if kind in MEDIA_TYPES and max(width, height) <= MAX_SIDE:
                picture.verify()
        if kind in MEDIA_TYPES and max(width, height) <= MAX_SIDE:
            with Image.open(io.BytesIO(data)) as picture:
                picture.load()
    except Image.DecompressionBombError:
        kind, width, height = None, MAX_SIDE + 1, MAX_SIDE + 1
    except UnidentifiedImageError:
        kind, width, height = None, 0, 0
    except (OSError, SyntaxError, ValueError):
        raise Invalid(
            _l("The site plan cannot be read (damaged or cut short)."),
            errors={"image": [_l("Upload a PNG or JPEG picture.")]},
            reason="unreadable",
        ) from None
    if max(width, height) > MAX_SIDE:
        raise PayloadTooLarge(
            _l("A site plan may be at most %(side)s pixels wide and high.", side=MAX_SIDE),
            reason="too_many_pixels",
        )
    if kind not in MEDIA_TYPES:
        raise Invalid(
            _l("A site plan must be a PNG or JPEG picture."),
            errors={"image": [_l("Upload a PNG or JPEG picture.")]},
            reason="unsupported_format",
        )
    if min(width, height) < MIN_SIDE:
        raise Invalid(
            _l("A site plan must be at least %(side)s pixels wide and high.", side=MIN_SIDE),
            errors={"image": [_l("The picture is too small.")]},
            reason="too_small",
        )
    return MEDIA_TYPES[kind], width, height


def _community(scope: Scope, community_id: str) -> Community:
    """The community, for officers, staff and admins of it: residents find no site plan (404),
    as they find no alerts."""
    community = scope.get(Community, community_id)
    if scope.role is UserRole.RESIDENT:
        raise NotFound(_l("%(community)s has no site plan.", community=community.name))
    return community


def readable(scope: Scope, community_id: str) -> SitePlan:
    """The community's plan for officers, staff and admins of it (404 for anyone else, and
    when none was uploaded)."""
    community = _community(scope, community_id)
    plan = db.session.get(SitePlan, community.id)
    if plan is None:
        raise NotFound(_l("%(community)s has no site plan.", community=community.name))
    return plan


def store(scope: Scope, community_id: str, data: bytes) -> SitePlan:
    """Upload or replace the community's plan (staff and admins); audited."""
    community = _community(scope, community_id)
    scope.require_write(Community)
    content_type, width, height = read_picture(data)
    plan = db.session.get(SitePlan, community.id)
    replaced = plan is not None
    if plan is None:
        plan = SitePlan(community_id=community.id)
        db.session.add(plan)
    plan.content_type, plan.image, plan.width, plan.height = content_type, data, width, height
    plan.sha256 = hashlib.sha256(data).hexdigest()
    plan.updated_at = utcnow()
    audit.record(
        scope.user,
        "site_plan.replace" if replaced else "site_plan.upload",
        community_id=community.id,
        target=community,
        details={
            "content_type": content_type,
            "width": width,
            "height": height,
            "sha256": plan.sha256,
            "bytes": len(data),
        },
    )
    return plan


def remove(scope: Scope, community_id: str) -> None:
    """Remove the plan (positions stay, for the next picture of the same plan); audited."""
    community = _community(scope, community_id)
    scope.require_write(Community)
    plan = db.session.get(SitePlan, community.id)
    if plan is None:
        raise NotFound(_l("%(community)s has no site plan.", community=community.name))
    audit.record(
        scope.user,
        "site_plan.delete",
        community_id=community.id,
        target=community,
        details={"sha256": plan.sha256},
    )
    db.session.delete(plan)


def placed(row: AccessPoint | Device) -> tuple[float, float] | None:
    """Where ``row`` is on the plan, or None when it is not placed."""
    if row.plan_x is None or row.plan_y is None:
        return None
    return row.plan_x, row.plan_y


def spot_of(point: AccessPoint | None, device: Device | None) -> tuple[float, float] | None:
    """Where something happened: the device's own position wins over its access point's."""
    for row in (device, point):
        if row is not None and (where := placed(row)) is not None:
            return where
    return None


def plan_meta(community_id: str) -> tuple[int, int, str] | None:
    """``(width, height, sha256)`` of the community's plan, without loading the picture."""
    row = db.session.execute(
        select(SitePlan.width, SitePlan.height, SitePlan.sha256).where(
            SitePlan.community_id == community_id
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


def plan_metas(community_ids: Iterable[str]) -> dict[str, tuple[int, int, str]]:
    """``plan_meta`` of each of these communities that has a plan (one query)."""
    ids = list(community_ids)
    rows = db.session.execute(
        select(SitePlan.community_id, SitePlan.width, SitePlan.height, SitePlan.sha256).where(
            SitePlan.community_id.in_(ids)
        )
    ).all()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def data_uri(community_id: str) -> str | None:
    """The picture as a ``data:`` URI (a drawing that stands alone: the evidence bundle)."""
    plan = db.session.get(SitePlan, community_id)
    if plan is None:
        return None
    return f"data:{plan.content_type};base64,{base64.b64encode(plan.image).decode()}"


def plan_picture(
    community: Community, href: str, size: tuple[int, int], alerts: Sequence[Alert] = ()
) -> PlanPicture:
    """What the plan drawing shows (the picture at ``href``, ``size`` pixels): every placed
    access point and device of ``community``, the spots of ``alerts`` (the caller has
    checked they are the community's) in red, and the names of their places not on it."""
    points = list(
        db.session.scalars(
            select(AccessPoint)
            .where(AccessPoint.community_id == community.id)
            .order_by(AccessPoint.name)
        )
    )
    devices = list(
        db.session.scalars(
            select(Device).where(Device.community_id == community.id).order_by(Device.name)
        )
    )
    by_point = {p.id: p for p in points}
    by_device = {d.id: d for d in devices}
    hits: set[str] = set()
    unplaced: list[str] = []
    for alert in alerts:
        device = by_device.get(alert.device_id or "")
        point = by_point.get(alert.access_point_id or "") or (
            by_point.get(device.access_point_id or "") if device else None
        )
        if device is not None and placed(device):
            hits.add(device.id)
        elif point is not None and placed(point):
            hits.add(point.id)
        elif (named := point or device) is not None:
            unplaced.append(named.name)
    marks = [
        PlanMark(
            id=row.id,
            name=row.name,
            kind=row.kind,
            x=x,
            y=y,
            device=isinstance(row, Device),
            hit=row.id in hits,
        )
        for row in [*points, *devices]
        if (where := placed(row)) is not None
        for x, y in [where]
    ]
    return PlanPicture(
        title=community.name,
        href=href,
        width=size[0],
        height=size[1],
        marks=tuple(marks),
        unplaced=tuple(dict.fromkeys(unplaced)),
    )


def unplaced_rows(rows: Iterable[AccessPoint | Device]) -> list[Any]:
    """The rows not on the plan yet (listed beside it on the site page)."""
    return [row for row in rows if placed(row) is None]
