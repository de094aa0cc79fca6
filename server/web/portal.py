"""The resident portal: phone-sized pages for guests' passes, the rotating code, doors, history.

Only residents use these pages; every other role finds no such page (404), as residents
find no staff pages. Each page acts for the resident's own unit through ``Scope`` and the
services (``passes``, ``remote``); a service's refusal is shown on the page with its own
status code (422, 409, 403), never as a server error. Issuing passes and opening doors
share their per-account budgets with the API (``server.core.ratelimits``).

Times are shown and entered in the community's time zone, like the staff pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel.speaklater import LazyString
from flask_login import login_required
from sqlalchemy import func, or_, select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.vocabulary import Decision
from server.access import qr as pass_verification
from server.access import remote
from server.api.schemas import PassInputSchema
from server.community import settings as community_settings
from server.core import ratelimits
from server.core.errors import Conflict, DomainError, NotFound
from server.core.scope import Scope
from server.core.wording import CREDENTIAL_WORDS, reason_words
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Building,
    Community,
    Person,
    Unit,
    User,
    UserRole,
    VisitorPass,
    utcnow,
)
from server.passes import service as passes
from server.passes.service import PassStatus
from server.web import bp
from server.web.helpers import (
    add_error,
    flash_error,
    flash_ok,
    merge_errors,
    person_names,
    point_names,
    read_local,
    signed_in_user,
    zone_of,
)
from server.web.live import stream_url

LIST_SIZE = 50
HISTORY_SIZE = 50
USE_CHOICES = (1, 2, 5)
# A pass "until tonight" ends at this local time; offered while at least this much is left.
_TONIGHT_ENDS = time(23, 59)
_TONIGHT_AT_LEAST = timedelta(minutes=30)


@dataclass(frozen=True)
class Duration:
    """A preset length of a pass: a fixed span, or (``span`` None) until tonight."""

    key: str
    label: LazyString
    span: timedelta | None


DURATIONS = (
    Duration("2h", _l("2 hours"), timedelta(hours=2)),
    Duration("tonight", _l("Until tonight"), None),
    Duration("24h", _l("24 hours"), timedelta(hours=24)),
    Duration("3d", _l("3 days"), timedelta(days=3)),
    Duration("7d", _l("7 days"), timedelta(days=7)),
)
DEFAULT_DURATION = "24h"

# The pass list's tabs: which statuses each shows.
TABS: dict[str, tuple[LazyString, tuple[PassStatus, ...]]] = {
    "current": (_p("pass list", "Active"), tuple(passes.OPENS_DOORS)),
    "used": (_p("pass list", "Used"), (PassStatus.USED,)),
    "ended": (_p("pass list", "Expired"), (PassStatus.EXPIRED, PassStatus.REVOKED)),
}

# Schema and service error keys -> the form's inputs.
_FORM_FIELD = {
    "guest_name": "guest_name",
    "valid_from": "starts_at",
    "valid_until": "duration",
    "max_uses": "max_uses",
    "access_point_ids": "access_point_ids",
    "plate": "plate",
}
FIELD_LABELS = {
    "form": _l("Pass"),
    "guest_name": _l("Guest's name"),
    "starts_at": _l("Starts"),
    "duration": _l("How long"),
    "max_uses": _l("Uses"),
    "access_point_ids": _p("pass", "Doors"),
    "plate": _l("Car plate"),
}


@dataclass(frozen=True)
class Resident:
    """The signed-in resident and where they live."""

    user: User
    scope: Scope
    unit: Unit
    building: Building
    community: Community

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.community)


def _resident() -> Resident:
    """The resident behind this request; other roles find no such page (404)."""
    user = signed_in_user()
    if user.role is not UserRole.RESIDENT:
        raise NotFound(_l("No such page."))
    unit = user.unit
    if unit is None:
        raise Conflict(_l("Your account is not linked to a unit yet; ask the property office."))
    return Resident(
        user=user,
        scope=Scope(user),
        unit=unit,
        building=db.session.get(Building, unit.building_id),
        community=db.session.get(Community, unit.community_id),
    )


# --- passes ---------------------------------------------------------------------------------


def _in_statuses(statuses: Iterable[PassStatus], now: datetime) -> Any:
    return or_(*(passes.status_condition(status, now) for status in statuses))


@bp.get("/my/passes")
@login_required
def portal_passes() -> str:
    resident = _resident()
    now = utcnow()
    tab = request.args.get("show", "current")
    if tab not in TABS:
        tab = "current"
    counts = {
        key: db.session.scalar(
            select(func.count()).select_from(
                resident.scope.query(VisitorPass)
                .where(_in_statuses(statuses, now))
                .order_by(None)
                .subquery()
            )
        )
        or 0
        for key, (_label, statuses) in TABS.items()
    }
    rows = list(
        db.session.scalars(
            resident.scope.query(VisitorPass)
            .where(_in_statuses(TABS[tab][1], now))
            .order_by(VisitorPass.created_at.desc(), VisitorPass.id.desc())
            .limit(LIST_SIZE)
        )
    )
    return render_template(
        "portal_passes.html",
        resident=resident,
        tabs=TABS,
        tab=tab,
        counts=counts,
        rows=[(row, passes.status_of(row, now)) for row in rows],
        more=counts[tab] > len(rows),
    )


def _durations(resident: Resident, now: datetime) -> list[Duration]:
    """The presets this community allows (at most ``pass_max_days``) and that make sense now."""
    max_days = community_settings.effective(resident.community.settings).pass_max_days
    offered = []
    for preset in DURATIONS:
        if preset.span is None:
            if _tonight(now, resident.zone) - now < _TONIGHT_AT_LEAST:
                continue
        elif preset.span > timedelta(days=max_days):
            continue
        offered.append(preset)
    return offered


def _tonight(start: datetime, zone: ZoneInfo) -> datetime:
    """The end of ``start``'s day in the community's zone."""
    local = start.astimezone(zone)
    return datetime.combine(local.date(), _TONIGHT_ENDS, tzinfo=zone).astimezone(start.tzinfo)


def _pass_input(
    form: MultiDict[str, str], resident: Resident, now: datetime, errors: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The form as ``passes.create``'s input; messages in ``errors`` when it is not one."""
    payload: dict[str, Any] = {
        "guest_name": form.get("guest_name", "").strip(),
        "access_point_ids": form.getlist("access_point_ids"),
    }
    if not payload["guest_name"]:
        add_error(errors, "guest_name", _("Enter your guest's name."))
    starts = None
    if form.get("starts_at", "").strip():
        starts = read_local(form, "starts_at", resident.zone, errors)
        if starts is not None:
            payload["valid_from"] = starts.isoformat()
    presets = {preset.key: preset for preset in _durations(resident, now)}
    chosen = presets.get(form.get("duration", ""))
    if chosen is None:
        add_error(errors, "duration", _("Choose how long the pass lasts."))
    else:
        start = starts or now
        until = _tonight(start, resident.zone) if chosen.span is None else start + chosen.span
        payload["valid_until"] = until.isoformat()
    try:
        uses = int(form.get("max_uses", ""))
    except ValueError:
        uses = 0
    if uses not in USE_CHOICES:
        add_error(errors, "max_uses", _("Choose how many times the pass opens."))
    payload["max_uses"] = uses
    if not payload["access_point_ids"]:
        add_error(errors, "access_point_ids", _("Choose at least one door."))
    plate = form.get("plate", "").strip()
    if plate:
        payload["plate"] = plate
    try:
        data = PassInputSchema().load(payload)
    except ma.ValidationError as error:
        merge_errors(errors, error.messages, _form_field)
        return None
    return None if errors else data


def _form_field(key: str) -> str:
    """The pass form's input for a schema or service message key."""
    return _FORM_FIELD.get(key.partition(".")[0], "form")


def _pass_form(
    resident: Resident, now: datetime, values: MultiDict[str, str], errors: dict[str, list[str]]
) -> str:
    settings = community_settings.effective(resident.community.settings)
    return render_template(
        "portal_pass_new.html",
        resident=resident,
        values=values,
        errors=errors,
        labels=FIELD_LABELS,
        durations=_durations(resident, now),
        tonight=_tonight(now, resident.zone),
        max_days=settings.pass_max_days,
        use_choices=USE_CHOICES,
        doors=passes.allowed_access_points(resident.unit),
    )


@bp.route("/my/passes/new", methods=["GET", "POST"])
@login_required
@ratelimits.issuing_passes
def portal_pass_new() -> Any:
    resident = _resident()
    now = utcnow()
    if request.method == "GET":
        defaults = MultiDict(
            [("duration", DEFAULT_DURATION), ("max_uses", "1")]
            + [("access_point_ids", p.id) for p in passes.default_access_points(resident.unit)]
        )
        return _pass_form(resident, now, defaults, {})
    errors: dict[str, list[str]] = {}
    data = _pass_input(request.form, resident, now, errors)
    status = 422
    if data is not None:
        try:
            row = passes.create(resident.scope, data, now=now)
            db.session.commit()
        except DomainError as error:
            db.session.rollback()  # nothing half-stored
            status = error.status
            merge_errors(
                errors, error.extensions.get("errors") or {"": [error.detail]}, _form_field
            )
        else:
            flash_ok(
                _(
                    "Pass for %(guest)s created: share the link or show the QR code.",
                    guest=row.guest_name,
                )
            )
            return redirect(url_for("web.portal_pass", pass_id=row.id), 303)
    errors = errors or {"form": [_("Check the form.")]}
    return _pass_form(resident, now, request.form, errors), status


@bp.get("/my/passes/<pass_id>")
@login_required
def portal_pass(pass_id: str) -> str:
    resident = _resident()
    row = resident.scope.get(VisitorPass, pass_id)
    status = passes.status_of(row)
    uses = passes.uses_of(row, limit=LIST_SIZE)
    return render_template(
        "portal_pass.html",
        resident=resident,
        visitor_pass=row,
        status=status,
        usable=status in passes.OPENS_DOORS,
        share_url=url_for("web.shared_pass", secret=passes.share_secret(row), _external=True),
        doors=sorted(point.name for point in row.access_points),
        uses=uses,
        point_names=point_names(event.access_point_id for event in uses),
        reason_words=reason_words,
    )


@bp.post("/my/passes/<pass_id>/revoke")
@login_required
def portal_pass_revoke(pass_id: str) -> Response:
    resident = _resident()
    row = passes.revoke(resident.scope, pass_id)
    db.session.commit()
    flash_ok(
        _(
            "Pass for %(guest)s revoked: its code no longer opens any door.",
            guest=row.guest_name,
        )
    )
    return redirect(url_for("web.portal_pass", pass_id=row.id), 303)


# --- the rotating code ---------------------------------------------------------------------


@bp.get("/my/code")
@login_required
def portal_code() -> Any:
    resident = _resident()
    person = db.session.get(Person, resident.user.person_id) if resident.user.person_id else None
    if person is None:
        raise Conflict(_l("Your account is not linked to a resident yet; ask the property office."))
    now = utcnow()
    _token, valid_until = pass_verification.resident_code(person, now)
    db.session.commit()  # a first code serial or signing key may have been made
    return (
        render_template(
            "portal_code.html",
            resident=resident,
            server_now_ms=int(now.timestamp() * 1000),
            valid_until_ms=int(valid_until.timestamp() * 1000),
            step_s=pass_verification.RESIDENT_CODE_STEP_S,
        ),
        200,
        {"Cache-Control": "no-store"},
    )


# --- doors ----------------------------------------------------------------------------------


# What became of a remote open, as the doors page says it (remote.outcome's words).
OPEN_OUTCOMES: dict[str, LazyString] = {
    "waiting": _l("Opening… waiting for the door."),
    "opened": _l("The door opened."),
    "failed": _l("The door did not open."),
    "expired": _l("The door did not answer."),
}


@dataclass(frozen=True)
class DoorRow:
    """A door on the doors page, and what became of the resident's last open of it."""

    point: AccessPoint
    openable: bool
    commands: dict[str, str]  # the last open's commands: id -> status
    outcome: str | None


def _doors_page(resident: Resident, status: int = 200) -> tuple[str, int]:
    points = list(db.session.scalars(resident.scope.query(AccessPoint).order_by(AccessPoint.name)))
    opens = remote.recent_opens(resident.scope)
    rows = []
    for point in points:
        sent = opens.get(point.id, [])
        rows.append(
            DoorRow(
                point=point,
                openable=bool(commands.actuators(point)),
                commands={row.id: row.status.value for row in sent},
                outcome=remote.outcome([row.status for row in sent]) if sent else None,
            )
        )
    waiting = any(row.outcome == "waiting" for row in rows)
    return render_template(
        "portal_doors.html",
        resident=resident,
        doors=rows,
        outcomes={key: str(text) for key, text in OPEN_OUTCOMES.items()},
        # Followed only while an open waits for its door's answer.
        stream=stream_url(resident.scope, resident.community.id, "commands") if waiting else None,
    ), status


@bp.get("/my/doors")
@login_required
def portal_doors() -> tuple[str, int]:
    return _doors_page(_resident())


@bp.post("/my/doors/<apid>/open")
@login_required
def portal_door_open(apid: str) -> Any:
    resident = _resident()
    point = resident.scope.get(AccessPoint, apid)
    try:
        remote.open_access_point(resident.scope, point.id)
        db.session.commit()
    except NotFound:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        flash_error(error.detail)
        return _doors_page(resident, error.status)
    flash_ok(_("%(door)s is opening.", door=point.name))
    return redirect(url_for("web.portal_doors"), 303)


# --- history --------------------------------------------------------------------------------


def _who(events: list[AccessEvent], scope: Scope) -> dict[str, str]:
    """Event id -> who it was: a household member's name, or the guest of a pass."""
    # The events are the household's and their guests' (the scope's), so these names are
    # the resident's to read even though the people table itself is staff-only.
    people = person_names(e.person_id for e in events)
    pass_ids = {e.pass_id for e in events if e.pass_id}
    guests = {
        row.id: row.guest_name
        for row in db.session.scalars(scope.query(VisitorPass).where(VisitorPass.id.in_(pass_ids)))
    }
    who = {}
    for event in events:
        if event.pass_id in guests:
            who[event.id] = _("Guest: %(name)s", name=guests[event.pass_id])
        else:
            who[event.id] = people.get(event.person_id or "") or _("Someone")
    return who


@bp.get("/my/history")
@login_required
def portal_history() -> str:
    resident = _resident()
    statement = resident.scope.query(AccessEvent)
    before = request.args.get("before")
    if before:
        last = resident.scope.get(AccessEvent, before)
        statement = statement.where(
            or_(
                AccessEvent.occurred_at < last.occurred_at,
                (AccessEvent.occurred_at == last.occurred_at) & (AccessEvent.id < last.id),
            )
        )
    events = list(
        db.session.scalars(
            statement.order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc()).limit(
                HISTORY_SIZE + 1
            )
        )
    )
    more = len(events) > HISTORY_SIZE
    events = events[:HISTORY_SIZE]
    return render_template(
        "portal_history.html",
        resident=resident,
        events=events,
        who=_who(events, resident.scope),
        point_names=point_names(event.access_point_id for event in events),
        reason_words=reason_words,
        credential_words=CREDENTIAL_WORDS,
        granted=Decision.GRANT,
        older=events[-1].id if more else None,
    )
