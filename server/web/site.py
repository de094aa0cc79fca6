"""The community's site for the property office: buildings, their units, and access points
(name, kind, zone, building, how long the door stays unlocked, the depth check for faces,
the weekly schedule).

Staff and admins only: officers and residents find no such page. Each form reports all its
messages at once and keeps what was typed; the changes are the structure room's
(``server.community.structure``), as the API's are.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.vocabulary import AccessPointKind, Zone
from server.api.schemas import (
    AccessPointPatchSchema,
    AccessPointSchema,
)
from server.community import structure
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessPoint, Building, Community, Device, Unit, UserRole
from server.web import bp
from server.web.helpers import (
    access_points_of,
    add_error,
    attempt,
    buildings_of,
    community_rows,
    flash_ok,
    load_form,
    refusal_errors,
    save_form,
    schedule_windows,
    scope_for,
    stand_in,
    window_rows,
)
from server.web.people import WEEKDAYS
from server.web.siteplan import site_page_context

# Plainer sentences than marshmallow's own (which stay English) for the inputs people type.
_FRIENDLY = {
    "name": _l("Enter a name (at most 80 characters)."),
    "number": _l("Enter the unit's number (at most 40 characters)."),
    "floor": _l("A floor is a whole number from -10 to 300."),
    "open_seconds": _l("Between 0.5 and 60 seconds."),
    "kind": _l("Choose a kind."),
    "zone": _l("Choose a zone."),
}


def _staff() -> Scope:
    return scope_for(UserRole.STAFF, UserRole.ADMIN)


def _field(key: str) -> str:
    """The input a schema's or the service's message key belongs to."""
    if not key:
        return "form"
    return {"open_ms": "open_seconds"}.get(key, key)


def _text(form: MultiDict[str, str], name: str) -> str:
    return form.get(name, "").strip()


# The site page: buildings and access points ---------------------------------------------------


def _site_page(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    buildings = buildings_of(scope, community.id)
    units = community_rows(scope, Unit, community.id, Unit.number)
    points = access_points_of(scope, community.id)
    devices = community_rows(scope, Device, community.id, Device.name)
    return render_template(
        "site.html",
        community=community,
        buildings=buildings,
        unit_counts=Counter(unit.building_id for unit in units),
        building_names={b.id: b.name for b in buildings},
        points=points,
        devices=devices,
        values=values or MultiDict(),
        errors=errors or {},
        **site_page_context(scope, community),
    ), status


def render_site(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The site page, with a form's values and messages (the site plan's forms)."""
    return _site_page(scope, community, values, errors, status)


@bp.get("/communities/<cid>/site")
@login_required
def site(cid: str) -> tuple[str, int]:
    scope = _staff()
    return _site_page(scope, scope.get(Community, cid))


def _building_data(form: MultiDict[str, str], errors: dict[str, list[str]]) -> dict[str, Any]:
    name = _text(form, "name")
    if not name or len(name) > 80:
        add_error(errors, "name", _FRIENDLY["name"])
    return {"name": stand_in(name[:80])}


@bp.post("/communities/<cid>/buildings")
@login_required
def building_create(cid: str) -> Any:
    scope = _staff()
    community = scope.get(Community, cid)
    errors: dict[str, list[str]] = {}
    data = _building_data(request.form, errors)
    building = save_form(
        lambda: structure.create_building(scope, community.id, data),
        errors,
        lambda error: refusal_errors(errors, error, _field, "name"),
    )
    if building is None:
        return _site_page(scope, scope.get(Community, cid), request.form, errors, 422)
    flash_ok(_("Building %(name)s added.", name=building.name))
    return redirect(url_for("web.building_page", bid=building.id), 303)


# A building and its units --------------------------------------------------------------------


def _building_page(
    scope: Scope,
    building: Building,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    failed: str = "",
    status: int = 200,
) -> tuple[str, int]:
    community = db.session.get(Community, building.community_id)
    units = community_rows(scope, Unit, community.id, Unit.number)
    return render_template(
        "building.html",
        community=community,
        building=building,
        units=[u for u in units if u.building_id == building.id],
        points=[p for p in access_points_of(scope, community.id) if p.building_id == building.id],
        values=values or MultiDict(),
        errors=errors or {},
        failed=failed,
    ), status


@bp.get("/buildings/<bid>")
@login_required
def building_page(bid: str) -> tuple[str, int]:
    scope = _staff()
    return _building_page(scope, scope.get(Building, bid))


@bp.post("/buildings/<bid>")
@login_required
def building_rename(bid: str) -> Any:
    scope = _staff()
    building = scope.get(Building, bid)
    errors: dict[str, list[str]] = {}
    data = _building_data(request.form, errors)
    saved = save_form(
        lambda: structure.update_building(scope, building.id, data),
        errors,
        lambda error: refusal_errors(errors, error, _field, "name"),
    )
    if saved is None:
        building = scope.get(Building, bid)
        return _building_page(scope, building, request.form, errors, "rename", 422)
    flash_ok(_("Saved."))
    return redirect(url_for("web.building_page", bid=building.id), 303)


@bp.post("/buildings/<bid>/delete")
@login_required
def building_delete(bid: str) -> Response:
    scope = _staff()
    building = scope.get(Building, bid)
    community_id, name = building.community_id, building.name
    if attempt(
        lambda: structure.delete_building(scope, building.id),
        _("Building %(name)s deleted.", name=name),
    ):
        return redirect(url_for("web.site", cid=community_id), 303)
    return redirect(url_for("web.building_page", bid=bid), 303)


def _unit_data(form: MultiDict[str, str], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The unit's number and floor as the service reads them; every message in ``errors``."""
    number = _text(form, "number")
    if not number or len(number) > 40:
        add_error(errors, "number", _FRIENDLY["number"])
    data: dict[str, Any] = {"number": stand_in(number[:40])}
    floor = _text(form, "floor")
    if not floor:
        data["floor"] = None
    else:
        try:
            data["floor"] = int(floor)
        except ValueError:
            add_error(errors, "floor", _FRIENDLY["floor"])
        else:
            if not -10 <= data["floor"] <= 300:
                add_error(errors, "floor", _FRIENDLY["floor"])
                data["floor"] = None
    return data


@bp.post("/buildings/<bid>/units")
@login_required
def unit_create(bid: str) -> Any:
    scope = _staff()
    building = scope.get(Building, bid)
    errors: dict[str, list[str]] = {}
    data = {"building_id": building.id, **_unit_data(request.form, errors)}
    unit = save_form(
        lambda: structure.create_unit(scope, building.community_id, data),
        errors,
        lambda error: refusal_errors(errors, error, _field, "number"),
    )
    if unit is None:
        building = scope.get(Building, bid)
        return _building_page(scope, building, request.form, errors, "new-unit", 422)
    flash_ok(_("Unit %(number)s added.", number=unit.number))
    return redirect(url_for("web.building_page", bid=building.id) + "#units", 303)


@bp.post("/units/<uid>")
@login_required
def unit_edit(uid: str) -> Any:
    scope = _staff()
    unit = scope.get(Unit, uid)
    building_id = unit.building_id
    errors: dict[str, list[str]] = {}
    data = _unit_data(request.form, errors)
    saved = save_form(
        lambda: structure.update_unit(scope, unit.id, data),
        errors,
        lambda error: refusal_errors(errors, error, _field, "number"),
    )
    if saved is None:
        building = scope.get(Building, building_id)
        return _building_page(scope, building, request.form, errors, uid, 422)
    flash_ok(_("Saved."))
    return redirect(url_for("web.building_page", bid=building_id) + "#units", 303)


@bp.post("/units/<uid>/delete")
@login_required
def unit_delete(uid: str) -> Response:
    scope = _staff()
    unit = scope.get(Unit, uid)
    building_id, number = unit.building_id, unit.number
    attempt(
        lambda: structure.delete_unit(scope, unit.id),
        _("Unit %(number)s deleted.", number=number),
    )
    return redirect(url_for("web.building_page", bid=building_id) + "#units", 303)


# Access points --------------------------------------------------------------------------------


def _seconds(milliseconds: int) -> str:
    """An unlock time as the form shows it: ``5``, ``2.5``."""
    return f"{milliseconds / 1000:g}"


def _point_values(point: AccessPoint | None) -> MultiDict[str, str]:
    if point is None:
        return MultiDict(
            {"kind": "door", "zone": "building", "open_seconds": "5", "requires_depth": "auto"}
        )
    return MultiDict(
        {
            "name": point.name,
            "kind": point.kind.value,
            "zone": point.zone.value,
            "building_id": point.building_id or "",
            "open_seconds": _seconds(point.open_ms),
            "requires_depth": "yes" if point.requires_depth else "no",
            **({"has_keypad": "yes"} if point.has_keypad else {}),
        }
    )


def _point_data(
    form: MultiDict[str, str], creating: bool, errors: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The form as the service's input, every message in ``errors``; None when the input
    cannot even be checked by the service."""
    name = _text(form, "name")
    if not name:
        add_error(errors, "name", _FRIENDLY["name"])
    payload: dict[str, Any] = {
        "name": stand_in(name),
        "zone": form.get("zone", ""),
        "building_id": form.get("building_id") or None,
    }
    if creating:
        payload["kind"] = form.get("kind", "")
    seconds = _text(form, "open_seconds").replace(",", ".")
    if seconds:  # none: the default (5 s) for a new one, unchanged for one that exists
        try:
            milliseconds = round(float(seconds) * 1000)
        except ValueError:
            add_error(errors, "open_seconds", _FRIENDLY["open_seconds"])
        else:
            if 500 <= milliseconds <= 60_000:
                payload["open_ms"] = milliseconds
            else:
                add_error(errors, "open_seconds", _FRIENDLY["open_seconds"])
    depth = form.get("requires_depth", "auto")
    if depth in ("yes", "no"):
        payload["requires_depth"] = depth == "yes"
    payload["has_keypad"] = form.get("has_keypad") == "yes"  # a checkbox: absent is no
    windows, kept = schedule_windows(form, errors)
    payload["schedule"] = windows or None
    schema = AccessPointSchema() if creating else AccessPointPatchSchema()
    return load_form(schema, payload, errors, kept, _field, _FRIENDLY)


def _point_page(
    scope: Scope,
    community: Community,
    point: AccessPoint | None,
    values: MultiDict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
) -> tuple[str, int]:
    posted = request.method == "POST"
    devices = community_rows(scope, Device, community.id, Device.name)
    return render_template(
        "access_point.html",
        community=community,
        point=point,
        values=values,
        errors=errors,
        kinds=list(AccessPointKind),
        zones=list(Zone),
        buildings=buildings_of(scope, community.id),
        windows=window_rows(point.schedule if point else None, values if posted else None),
        weekdays=WEEKDAYS,
        devices=[d for d in devices if point is not None and d.access_point_id == point.id],
    ), status


@bp.route("/communities/<cid>/access-points/new", methods=["GET", "POST"])
@login_required
def access_point_new(cid: str) -> Any:
    scope = _staff()
    community = scope.get(Community, cid)
    if request.method == "GET":
        return _point_page(scope, community, None, _point_values(None), {})
    errors: dict[str, list[str]] = {}
    data = _point_data(request.form, True, errors)
    point = None
    if data is not None:
        point = save_form(
            lambda: structure.create_access_point(scope, community.id, data),
            errors,
            lambda error: refusal_errors(errors, error, _field, "name"),
        )
    if point is None:
        community = scope.get(Community, cid)
        return _point_page(scope, community, None, request.form, errors, 422)
    flash_ok(_("Access point %(name)s added.", name=point.name))
    return redirect(url_for("web.access_point_page", apid=point.id), 303)


@bp.route("/access-points/<apid>", methods=["GET", "POST"])
@login_required
def access_point_page(apid: str) -> Any:
    scope = _staff()
    point = scope.get(AccessPoint, apid)
    community = db.session.get(Community, point.community_id)
    if request.method == "GET":
        return _point_page(scope, community, point, _point_values(point), {})
    errors: dict[str, list[str]] = {}
    data = _point_data(request.form, False, errors)
    saved = None
    if data is not None:
        saved = save_form(
            lambda: structure.update_access_point(scope, point.id, data),
            errors,
            lambda error: refusal_errors(errors, error, _field, "name"),
        )
    if saved is None:
        point = scope.get(AccessPoint, apid)
        community = db.session.get(Community, point.community_id)
        return _point_page(scope, community, point, request.form, errors, 422)
    flash_ok(_("Saved."))
    return redirect(url_for("web.access_point_page", apid=point.id), 303)
