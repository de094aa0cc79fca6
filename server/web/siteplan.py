"""The site plan on the pages: staff upload it and place access points and devices on the
site page; officers see it on an alert's page, in the console and on their home page (one
plan per community, the open alerts' spots in red).

Placing works without a script: each access point and device has a small form with its
position as two numbers (fractions of the picture's width and height, 0 to 1);
``static/siteplan.js`` fills that form from a click on the plan and sends it. The changes
are the rooms' (``server.community.siteplan``, ``structure``, ``server.devices.service``),
as the API's are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask import redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.vocabulary import AlertStatus
from server.community import siteplan, structure
from server.core.errors import NotFound
from server.core.scope import Scope
from server.devices import service as devices
from server.extensions import db
from server.models import AccessPoint, Alert, Community, Device, UserRole
from server.web import bp
from server.web.drawings import site_plan
from server.web.helpers import add_error, attempt, flash_ok, save_form, scope_for

# How many communities' plans the officer's home page draws (those with open alerts first).
HOME_PLANS = 12
POSITION_WORDS = _l("A position is two numbers from 0 to 1, or both left empty to clear it.")


def plan_url(community_id: str, sha256: str) -> str:
    """Where the pages load the picture: the API's, named by its hash so a browser's copy of
    an older picture is never shown."""
    return url_for("siteplan.get_site_plan", cid=community_id, v=sha256[:16])


def drawing(
    community: Community,
    alerts: Sequence[Alert] = (),
    meta: tuple[int, int, str] | None = None,
) -> tuple[Markup, bool] | None:
    """The community's plan with ``alerts``' spots in red, and whether it marks any and
    says none is not placed; None when the community has no plan. ``meta``: its
    ``plan_meta``, when the caller has it."""
    meta = meta or siteplan.plan_meta(community.id)
    if meta is None:
        return None
    width, height, sha256 = meta
    picture = siteplan.plan_picture(
        community, plan_url(community.id, sha256), (width, height), alerts
    )
    spotted = any(mark.hit for mark in picture.marks) and not picture.unplaced
    return site_plan(picture), spotted


def open_alert_plans(
    communities: Iterable[Community], alerts: Iterable[Alert], limit: int = HOME_PLANS
) -> list[dict[str, Any]]:
    """One plan per community that has one, with its open alerts' spots (communities with
    open alerts first, at most ``limit``): the officers' view of the city."""
    open_by: dict[str, list[Alert]] = {}
    for alert in alerts:
        if alert.status is not AlertStatus.RESOLVED:
            open_by.setdefault(alert.community_id, []).append(alert)
    by_id = {c.id: c for c in communities}
    metas = siteplan.plan_metas(by_id)
    ordered = sorted(
        (by_id[cid] for cid in metas), key=lambda c: (c.id not in open_by, c.name, c.id)
    )
    plans = []
    for community in ordered[:limit]:
        spots = open_by.get(community.id, [])
        drawn = drawing(community, spots, metas[community.id])
        if drawn is not None:
            plans.append({"community": community, "drawing": drawn[0], "open": len(spots)})
    return plans


def site_page_context(scope: Scope, community: Community) -> dict[str, Any]:
    """What the site page's plan section shows: the drawing, the rows to place, what is not
    placed yet."""
    points = list(
        db.session.scalars(
            scope.query(AccessPoint)
            .where(AccessPoint.community_id == community.id)
            .order_by(AccessPoint.name)
        )
    )
    rows = list(
        db.session.scalars(
            scope.query(Device).where(Device.community_id == community.id).order_by(Device.name)
        )
    )
    meta = siteplan.plan_meta(community.id)
    drawn = drawing(community) if meta else None
    placeable = [("access_point", p) for p in points] + [("device", d) for d in rows]
    return {
        "plan": None
        if meta is None or drawn is None
        else {"drawing": drawn[0], "width": meta[0], "height": meta[1]},
        "placeable": placeable,
        "unplaced": [row for _kind, row in placeable if siteplan.placed(row) is None],
        "max_mb": siteplan.MAX_BYTES // (1024 * 1024),
    }


def _staff() -> Scope:
    return scope_for(UserRole.STAFF, UserRole.ADMIN)


def _back(cid: str) -> Response:
    return redirect(url_for("web.site", cid=cid) + "#site-plan", 303)


@bp.post("/communities/<cid>/site-plan")
@login_required
def site_plan_upload(cid: str) -> Response:
    scope = _staff()
    community = scope.get(Community, cid)
    upload = request.files.get("image")
    data = upload.read(siteplan.MAX_BYTES + 1) if upload else b""
    attempt(lambda: siteplan.store(scope, community.id, data), _l("Site plan saved."))
    return _back(community.id)


@bp.post("/communities/<cid>/site-plan/delete")
@login_required
def site_plan_delete(cid: str) -> Response:
    scope = _staff()
    community = scope.get(Community, cid)
    attempt(lambda: siteplan.remove(scope, community.id), _l("Site plan removed."))
    return _back(community.id)


def _position(form: MultiDict[str, str], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The typed position (``0,5`` reads as ``0.5``); both empty clears it."""
    raw = [form.get(name, "").strip().replace(",", ".") for name in ("plan_x", "plan_y")]
    if not any(raw):
        return {"plan_x": None, "plan_y": None}
    values: list[float | None] = []
    for name, text in zip(("plan_x", "plan_y"), raw, strict=True):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not 0 <= value <= 1:
            add_error(errors, name, POSITION_WORDS)
        values.append(value)
    return {"plan_x": values[0], "plan_y": values[1]}


@bp.post("/communities/<cid>/site-plan/place")
@login_required
def site_plan_place(cid: str) -> Any:
    """Place (or clear) one access point or device: ``target`` is ``access_point:<id>`` or
    ``device:<id>``."""
    from server.web.site import render_site  # the site page's module imports this one

    scope = _staff()
    community = scope.get(Community, cid)
    kind, _sep, ident = request.form.get("target", "").partition(":")
    model = {"access_point": AccessPoint, "device": Device}.get(kind)
    row = scope.get(model, ident) if model else None
    if row is None or row.community_id != community.id:
        raise NotFound(_l("No such access point or device in this community."))
    errors: dict[str, list[str]] = {}
    data = _position(request.form, errors)
    if kind == "access_point":
        saved = save_form(
            lambda: structure.update_access_point(scope, row.id, data),
            errors,
            lambda error: add_error(errors, "plan_x", str(error)),
        )
    else:
        saved = save_form(
            lambda: devices.update(scope, row.id, data),
            errors,
            lambda error: add_error(errors, "plan_x", str(error)),
        )
    if saved is None:
        return render_site(scope, scope.get(Community, cid), request.form, errors, 422)
    if data["plan_x"] is None:
        flash_ok(_("%(name)s is no longer on the site plan.", name=saved.name))
    else:
        flash_ok(_("%(name)s placed on the site plan.", name=saved.name))
    return _back(community.id)
