"""Courier codes on the pages: the resident portal's **Courier codes** (``/my/codes``) and the
building page's **Delivery codes** for staff (``/buildings/<bid>/delivery-codes``).

Both issue through ``server.couriers.service`` and show the digits once, on the page that
answers the form (never stored, never in a redirect or the session: that page is
``no-store``); lists show codes masked with their status. Issuing shares the per-account
budget of visitor passes.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.wrappers import Response

from gatekeeper.pincodes import masked
from server.community import settings as community_settings
from server.core import ratelimits
from server.core.errors import DomainError
from server.core.scope import Scope
from server.couriers import service as couriers
from server.extensions import db
from server.models import Building, Community, CourierCode, UserRole
from server.web import bp
from server.web.helpers import add_error, flash_ok, point_names, scope_for
from server.web.portal import Resident, _resident

LIST_SIZE = 30
# The lengths offered on the forms (minutes), within the community's maximum.
RESIDENT_MINUTES = (30, 60, 120, 240)
STAFF_MINUTES = (60, 240, 720, 1440)
STAFF_USES = (1, 5, 20)
_NO_STORE = {"Cache-Control": "no-store"}
FIELD_LABELS = {
    "form": _l("Code"),
    "access_point_id": _l("Door"),
    "minutes": _l("How long"),
    "max_uses": _l("Uses"),
    "label": _l("For whom"),
}


def _durations(community: Community, offered: tuple[int, ...]) -> list[int]:
    longest = community_settings.effective(community.settings).courier_code_max_minutes
    return [minutes for minutes in offered if minutes <= longest]


def _read_form(
    durations: list[int], errors: dict[str, list[str]], *, with_uses: bool
) -> dict[str, Any]:
    form = request.form
    data: dict[str, Any] = {
        "access_point_id": form.get("access_point_id", ""),
        "label": form.get("label", "").strip()[:80],
    }
    try:
        minutes = int(form.get("minutes", ""))
    except ValueError:
        minutes = 0
    if minutes not in durations:
        add_error(errors, "minutes", _("Choose how long the code lasts."))
    data["minutes"] = minutes
    if with_uses:
        try:
            uses = int(form.get("max_uses", ""))
        except ValueError:
            uses = 0
        if uses not in STAFF_USES:
            add_error(errors, "max_uses", _("Choose how many times the code opens."))
        data["max_uses"] = uses
    if not data["access_point_id"]:
        add_error(errors, "access_point_id", _("Choose the keypad door."))
    return data


def _issue(scope: Scope, data: dict[str, Any], errors: dict[str, list[str]]) -> tuple[Any, int]:
    """``(code, digits)`` and 200, or ``None`` and the refusal's status (messages in ``errors``)."""
    try:
        issued = couriers.issue(scope, data)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()  # nothing half-stored
        found = error.extensions.get("errors") or {"form": [error.detail]}
        for field, messages in found.items():
            for message in messages:
                add_error(errors, field if field in FIELD_LABELS else "form", message)
        return None, error.status
    return issued, 200


def _rows(codes: list[CourierCode]) -> list[tuple[CourierCode, str, Any]]:
    return [(code, masked(code.hint), couriers.status_of(code)) for code in codes]


# --- the resident portal ----------------------------------------------------------------------


def _portal_page(
    resident: Resident,
    errors: dict[str, list[str]] | None = None,
    issued: tuple[CourierCode, str] | None = None,
    status: int = 200,
) -> tuple[str, int, dict[str, str]]:
    doors = couriers.keypad_points(resident.unit)
    rows = _rows(couriers.unit_codes(resident.scope, LIST_SIZE))
    return (
        render_template(
            "portal_codes.html",
            resident=resident,
            doors=doors,
            durations=_durations(resident.community, RESIDENT_MINUTES),
            default_minutes=community_settings.effective(
                resident.community.settings
            ).courier_code_minutes,
            values=request.form if request.method == "POST" else {},
            errors=errors or {},
            labels=FIELD_LABELS,
            issued=issued,
            rows=rows,
            point_names=point_names(code.access_point_id for code, _m, _s in rows),
        ),
        status,
        _NO_STORE,
    )


@bp.get("/my/codes")
@login_required
def portal_codes() -> Any:
    return _portal_page(_resident())


@bp.post("/my/codes")
@login_required
@ratelimits.issuing_passes
def portal_code_new() -> Any:
    resident = _resident()
    errors: dict[str, list[str]] = {}
    data = _read_form(_durations(resident.community, RESIDENT_MINUTES), errors, with_uses=False)
    if errors:
        return _portal_page(resident, errors, status=422)
    issued, status = _issue(resident.scope, data, errors)
    if issued is None:
        return _portal_page(resident, errors, status=status)
    return _portal_page(resident, issued=issued)


@bp.post("/my/codes/<code_id>/revoke")
@login_required
def portal_code_revoke(code_id: str) -> Response:
    resident = _resident()
    code = couriers.revoke(resident.scope, code_id)
    db.session.commit()
    flash_ok(_("Code %(code)s cancelled: it no longer opens the door.", code=masked(code.hint)))
    return redirect(url_for("web.portal_codes"), 303)


# --- staff: a building's delivery codes ---------------------------------------------------------


def _delivery_page(
    scope: Scope,
    building: Building,
    errors: dict[str, list[str]] | None = None,
    issued: tuple[CourierCode, str] | None = None,
    status: int = 200,
) -> tuple[str, int, dict[str, str]]:
    community = db.session.get(Community, building.community_id)
    doors = couriers.building_points(scope, building)
    rows = _rows(couriers.delivery_codes(scope, building, LIST_SIZE))
    return (
        render_template(
            "delivery_codes.html",
            community=community,
            building=building,
            doors=doors,
            durations=_durations(community, STAFF_MINUTES),
            use_choices=STAFF_USES,
            values=request.form if request.method == "POST" else {},
            errors=errors or {},
            labels=FIELD_LABELS,
            issued=issued,
            rows=rows,
            point_names=point_names(code.access_point_id for code, _m, _s in rows),
        ),
        status,
        _NO_STORE,
    )


def _staff() -> Scope:
    return scope_for(UserRole.STAFF, UserRole.ADMIN)


@bp.get("/buildings/<bid>/delivery-codes")
@login_required
def delivery_codes(bid: str) -> Any:
    scope = _staff()
    return _delivery_page(scope, scope.get(Building, bid))


@bp.post("/buildings/<bid>/delivery-codes")
@login_required
@ratelimits.issuing_passes
def delivery_code_new(bid: str) -> Any:
    scope = _staff()
    building = scope.get(Building, bid)
    errors: dict[str, list[str]] = {}
    community = db.session.get(Community, building.community_id)
    data = _read_form(_durations(community, STAFF_MINUTES), errors, with_uses=True)
    if data["access_point_id"] and data["access_point_id"] not in {
        door.id for door in couriers.building_points(scope, building)
    }:
        add_error(errors, "access_point_id", _("Choose the keypad door."))
    if errors:
        return _delivery_page(scope, building, errors, status=422)
    issued, status = _issue(scope, data, errors)
    if issued is None:
        return _delivery_page(scope, building, errors, status=status)
    return _delivery_page(scope, building, issued=issued)


@bp.post("/buildings/<bid>/delivery-codes/<code_id>/revoke")
@login_required
def delivery_code_revoke(bid: str, code_id: str) -> Response:
    scope = _staff()
    building = scope.get(Building, bid)
    code = couriers.revoke(scope, code_id)
    db.session.commit()
    flash_ok(_("Code %(code)s cancelled: it no longer opens the door.", code=masked(code.hint)))
    return redirect(url_for("web.delivery_codes", bid=building.id), 303)
