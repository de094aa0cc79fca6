"""The holiday calendar page of a community: the holidays by first day (dates in the
community's zone, the ones in force today marked), a form to add one, a button to delete.

Staff and admins change the calendar; officers read it; residents find no such page. The
rules are the community room's (``server.community.holidays``), as the API's are.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.holidays import HolidayEffect, local_day
from server.api.holidays import HolidayPatchSchema, HolidaySchema
from server.community import holidays
from server.core.errors import DomainError
from server.core.scope import Scope
from server.extensions import db
from server.models import Community, Holiday, UserRole, utcnow
from server.web import bp
from server.web.helpers import (
    add_error,
    attempt,
    desk_scope,
    flash_ok,
    load_form,
    refusal_errors,
    save_form,
    scope_for,
    stand_in,
)

_FRIENDLY = {
    "name": _l("Enter a name (at most 80 characters)."),
    "first_day": _l("Enter the first day as a date."),
    "last_day": _l("Enter the last day as a date (or leave it empty for one day)."),
}


def _field(key: str) -> str:
    if key.startswith("hours"):
        return "hours"
    return key or "form"


def _page(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    today = local_day(utcnow(), community.timezone)
    points = holidays.access_points(scope, community.id)
    return render_template(
        "holidays.html",
        community=community,
        holidays=holidays.holidays(scope, community.id),
        points=points,
        point_names={p.id: p.name for p in points},
        today=today,
        can_change=scope.can_write(Holiday),
        values=values if values is not None else MultiDict({"effect": "closed"}),
        errors=errors or {},
        effects=list(HolidayEffect),
    ), status


def _form_data(
    form: MultiDict[str, str], errors: dict[str, list[str]], *, creating: bool = True
) -> dict[str, Any] | None:
    """The form as the API's input (one window of hours, every day), or None with messages.

    A changed holiday gets every field: an empty last day is the first day again, and a
    closing holiday loses its hours."""
    name = form.get("name", "").strip()
    if not name:
        add_error(errors, "name", _FRIENDLY["name"])
    payload: dict[str, Any] = {
        "name": stand_in(name),
        "first_day": form.get("first_day", "").strip(),
        "effect": form.get("effect", "closed"),
        "all_points": form.get("all_points") == "on",
        "access_point_ids": form.getlist("point"),
    }
    if form.get("last_day", "").strip():
        payload["last_day"] = form["last_day"].strip()
    elif not creating:
        payload["last_day"] = payload["first_day"]
    if not creating:
        payload["hours"] = None
    if payload["effect"] == HolidayEffect.HOURS:
        start = form.get("start", "").strip()[:5]
        end = form.get("end", "").strip()[:5]
        if not start or not end:
            add_error(errors, "hours", _("Give the hours the points keep: a start and an end."))
        else:
            # A time input cannot say 24:00; an end at midnight means the end of the day.
            payload["hours"] = [{"start": start, "end": "24:00" if end == "00:00" else end}]
    schema = HolidaySchema() if creating else HolidayPatchSchema()
    return load_form(schema, payload, errors, [], _field, _FRIENDLY)


@bp.route("/communities/<cid>/holidays", methods=["GET", "POST"])
@login_required
def holidays_page(cid: str) -> Any:
    """The calendar (officers read it); staff add holidays here."""
    if request.method == "GET":
        scope = desk_scope()
        return _page(scope, scope.get(Community, cid))
    scope = scope_for(UserRole.STAFF, UserRole.ADMIN)
    community = scope.get(Community, cid)
    errors: dict[str, list[str]] = {}
    data = _form_data(request.form, errors)
    holiday = None
    if data is not None:
        holiday = save_form(
            lambda: holidays.create(scope, community.id, data),
            errors,
            lambda error: _refused(errors, error),
        )
    if holiday is None:
        community = scope.get(Community, cid)
        return _page(scope, community, request.form, errors, 422)
    flash_ok(_("Holiday %(name)s added.", name=holiday.name))
    return redirect(url_for("web.holidays_page", cid=community.id), 303)


def _refused(errors: dict[str, list[str]], error: DomainError) -> None:
    refusal_errors(errors, error, _field, "form")


def _values(holiday: Holiday) -> MultiDict[str, str]:
    """A holiday as the form shows it."""
    values = MultiDict(
        {
            "name": holiday.name,
            "first_day": holiday.first_day.isoformat(),
            "last_day": holiday.last_day.isoformat(),
            "effect": str(holiday.effect),
        }
    )
    if holiday.hours:
        first = holiday.hours[0]
        values["start"] = first["start"]
        values["end"] = "00:00" if first["end"] == "24:00" else first["end"]
    if holiday.all_points:
        values["all_points"] = "on"
    for point in holiday.access_points:
        values.add("point", point.id)
    return values


def _holiday_page(
    scope: Scope,
    holiday: Holiday,
    values: MultiDict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
) -> tuple[str, int]:
    community = db.session.get(Community, holiday.community_id)
    return render_template(
        "holiday.html",
        community=community,
        holiday=holiday,
        points=holidays.access_points(scope, community.id),
        values=values,
        errors=errors,
        effects=list(HolidayEffect),
    ), status


def _keep_finer_hours(holiday: Holiday, data: dict[str, Any]) -> dict[str, Any]:
    """The form shows one window of hours, every day; hours set through the API may be finer
    (several windows, some weekdays). Saved with that first window untouched, they are kept
    as they are, rather than widened to the form's every-day window."""
    stored = holiday.hours or []
    shown = data.get("hours") or []
    every_day = list(range(1, 8))
    finer = len(stored) > 1 or any(
        sorted(window.get("days", every_day)) != every_day for window in stored
    )
    if not finer or len(shown) != 1:
        return data
    first = stored[0]
    if (shown[0]["start"], shown[0]["end"]) != (first["start"], first["end"]):
        return data
    return {**data, "hours": stored}


@bp.route("/holidays/<hid>", methods=["GET", "POST"])
@login_required
def holiday_page(hid: str) -> Any:
    """Change a holiday: the same form, filled in."""
    scope = scope_for(UserRole.STAFF, UserRole.ADMIN)
    holiday = scope.get(Holiday, hid)
    if request.method == "GET":
        return _holiday_page(scope, holiday, _values(holiday), {})
    errors: dict[str, list[str]] = {}
    data = _form_data(request.form, errors, creating=False)
    saved = None
    if data is not None:
        data = _keep_finer_hours(holiday, data)
        saved = save_form(
            lambda: holidays.update(scope, holiday.id, data),
            errors,
            lambda error: _refused(errors, error),
        )
    if saved is None:
        holiday = scope.get(Holiday, hid)
        return _holiday_page(scope, holiday, request.form, errors, 422)
    flash_ok(_("Saved."))
    return redirect(url_for("web.holidays_page", cid=saved.community_id), 303)


@bp.post("/holidays/<hid>/delete")
@login_required
def holiday_delete(hid: str) -> Response:
    scope = scope_for(UserRole.STAFF, UserRole.ADMIN)
    holiday = scope.get(Holiday, hid)
    community_id, name = holiday.community_id, holiday.name
    attempt(
        lambda: holidays.delete(scope, holiday.id),
        _("Holiday %(name)s deleted.", name=name),
    )
    db.session.expire_all()
    return redirect(url_for("web.holidays_page", cid=community_id), 303)
