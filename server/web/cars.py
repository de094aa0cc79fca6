"""Staff pages for car gates: the cars inside now, each barrier's recent decisions with its
"Open barrier" button, and the blocked-plate list. The cars inside follow entries and exits
live for staff and admins (the ``cars`` feed, ``server.web.live``).

Staff and admins see and act on the communities they run; officers read (no buttons, no
names of residents or guests: those rows are not theirs to see); residents find no such
page (404). Each action is a CSRF-protected POST that calls the service, commits, flashes
and redirects back; only the blocked-plate form re-renders itself with its messages.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import marshmallow as ma
from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import pgettext
from flask_babel.speaklater import LazyString
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.vocabulary import AccessPointKind, CredentialType, Decision
from server.access import parking, remote, vehicles
from server.api.schemas import BlockedPlateInputSchema
from server.core.errors import DomainError, Forbidden, NotFound
from server.core.links import snapshot_url
from server.core.scope import Scope
from server.core.wording import reason_words, word
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    BlockedPlate,
    Community,
    Person,
    Vehicle,
    VisitorPass,
    utcnow,
)
from server.web import bp
from server.web.helpers import (
    desk_scope,
    flash_error,
    flash_ok,
    flatten_messages,
    rows_by_id,
    user_names,
)
from server.web.live import stream_url

# Decisions shown per barrier.
RECENT = 20
PRESENCE_WORDS: dict[str, LazyString] = {
    "entry_without_exit": _l("came in again: its last exit was not seen"),
    "exit_without_entry": _l("went out without a recorded entry"),
}
# Why a near read of a plate was or was not taken for the registered one (plate.py's codes).
FUZZY_WHY: dict[str, LazyString] = {
    "ambiguous": _l("more than one registered plate is one camera confusion away"),
    "off": _l("fuzzy matching is off in this community"),
    "low_confidence": _l("the only registered plate one camera confusion away, low confidence"),
}


def how_long(delta: timedelta) -> str:
    """A stay in words: ``45 min``, ``2 h 05 min``, ``3 d 4 h``."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return _("%(days)s d %(hours)s h", days=days, hours=hours)
    if hours:
        return _("%(hours)s h %(minutes)s min", hours=hours, minutes=format(minutes, "02d"))
    return _("%(minutes)s min", minutes=minutes)


def _cars_inside(scope: Scope, community: Community, now: datetime) -> list[dict[str, Any]]:
    """Each open presence with whose car it is, how long it has been in, and overstay."""
    presences = vehicles.inside(scope, community.id)
    cars = rows_by_id(scope, Vehicle, (p.vehicle_id for p in presences))
    owners = rows_by_id(scope, Person, (v.person_id for v in cars.values()))
    passes = rows_by_id(scope, VisitorPass, (p.pass_id for p in presences))
    temporary = parking.temporary_presences({p.id for p in presences})
    rows = []
    for presence in presences:
        car = cars.get(presence.vehicle_id or "")
        visitor_pass = passes.get(presence.pass_id or "")
        ended = visitor_pass.valid_until if visitor_pass else None
        rows.append(
            {
                "presence": presence,
                "kind": "temporary" if presence.id in temporary else vehicles.kind_of(presence),
                "owner": owners.get(car.person_id) if car else None,
                "guest": visitor_pass.guest_name if visitor_pass else None,
                "pass_until": ended,
                "stay": how_long(now - presence.entered_at),
                "overstay": bool(
                    presence.pass_id
                    and ((ended is not None and ended <= now) or presence.overstay_alerted_at)
                ),
            }
        )
    return rows


def _fuzzy_words(fuzzy: dict[str, Any]) -> str:
    """What the fuzzy match did, for the guard: the read, the registered plate, the outcome."""
    separator = pgettext("between plates", " or ")
    matched = fuzzy.get("matched") or separator.join(fuzzy.get("candidates") or ()) or "—"
    read = fuzzy.get("read", "?")
    if fuzzy.get("accepted"):
        words = _("read %(read)s, registered %(matched)s; accepted", read=read, matched=matched)
    else:
        words = _("read %(read)s, registered %(matched)s; not accepted", read=read, matched=matched)
    why = _fuzzy_why(fuzzy)
    return _("%(words)s: %(why)s", words=words, why=why) if why else words


def _fuzzy_why(fuzzy: dict[str, Any]) -> str | None:
    """The reason in the page's language; the stored English for records without a code."""
    code = fuzzy.get("why_code")
    if code == "confident":
        return _(
            "the camera was sure of its read (confidence %(confidence)s, fuzzy below %(limit)s)",
            confidence=fuzzy.get("confidence"),
            limit=fuzzy.get("fuzzy_below"),
        )
    if code in FUZZY_WHY:
        return str(FUZZY_WHY[code])
    return fuzzy.get("why")


def _decision_row(event: AccessEvent) -> dict[str, Any]:
    details = event.details or {}
    notes = []
    if details.get("blocked_plate"):
        plate = details["blocked_plate"]
        if details.get("detail"):
            notes.append(
                _("blocked plate %(plate)s: %(reason)s", plate=plate, reason=details["detail"])
            )
        else:
            notes.append(_("blocked plate %(plate)s", plate=plate))
    if details.get("presence") in PRESENCE_WORDS:
        notes.append(str(PRESENCE_WORDS[details["presence"]]))
    if event.credential_type is CredentialType.REMOTE:
        username = details.get("username")
        notes.append(_("opened by %(name)s", name=username) if username else _("opened by staff"))
    return {
        "event": event,
        "granted": event.decision is Decision.GRANT,
        "plate": details.get("plate"),
        "words": reason_words(event.reason),
        "fuzzy": details.get("fuzzy"),
        "fuzzy_words": _fuzzy_words(details["fuzzy"]) if details.get("fuzzy") else None,
        "notes": notes,
        "snapshot": snapshot_url(event.id) if event.snapshot_path else None,
    }


def _barriers(scope: Scope, community: Community) -> list[dict[str, Any]]:
    """Each barrier with its recent decisions (plates and remote opens) and whether it opens."""
    points = db.session.scalars(
        scope.query(AccessPoint)
        .where(
            AccessPoint.community_id == community.id,
            AccessPoint.kind == AccessPointKind.BARRIER,
        )
        .order_by(AccessPoint.name)
    )
    barriers = []
    for point in points:
        events = db.session.scalars(
            scope.query(AccessEvent)
            .where(AccessEvent.access_point_id == point.id)
            .order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc())
            .limit(RECENT)
        )
        barriers.append(
            {
                "point": point,
                "can_open": bool(commands.actuators(point)),
                "decisions": [_decision_row(event) for event in events],
            }
        )
    return barriers


@bp.get("/communities/<cid>/cars")
@login_required
def cars(cid: str) -> Any:
    """The page; ``?part=inside`` only its cars-inside card (static/cars.js fetches it when a
    car enters or leaves: the ``cars`` feed, staff and admins)."""
    scope = desk_scope()
    community = scope.get(Community, cid)
    now = utcnow()
    inside = _cars_inside(scope, community, now)
    shown = {
        "community": community,
        "inside": inside,
        "visitors": sum(1 for row in inside if row["kind"] == "visitor"),
        "can_see_people": scope.can_write(Person),
    }
    if request.args.get("part") == "inside":
        return render_template("_cars_inside.html", **shown), 200, {"Cache-Control": "no-store"}
    if request.args.get("part") == "parking":  # static/parking.js: the temporary cars' card
        card = parking_card(scope, community, now)
        page = render_template("_parking_waiting.html", community=community, parking=card)
        return page, 200, {"Cache-Control": "no-store"}
    return render_template(
        "cars.html",
        **shown,
        barriers=_barriers(scope, community),
        parking=parking_card(scope, community, now),
        can_open=scope.can_write(AccessPoint),
        stream=stream_url(scope, community.id, "cars", "parking"),
    )


def parking_card(scope: Scope, community: Community, now: datetime) -> dict[str, Any]:
    from server.web.parking import parking_card as card  # it imports this module

    return card(scope, community, now)


@bp.post("/barriers/<apid>/open")
@login_required
def cars_open_barrier(apid: str) -> Response:
    """The guard's button: ``open`` to the barrier's devices (audited, a ``remote_open``)."""
    scope = desk_scope()
    point = scope.get(AccessPoint, apid)
    if point.kind is not AccessPointKind.BARRIER:
        raise NotFound(_("No barrier with id '%(id)s'.", id=apid))
    if not scope.can_write(AccessPoint):
        raise Forbidden(_("This %(role)s account cannot open barriers.", role=word(scope.role)))
    try:
        rows = remote.open_access_point(scope, point.id)
        db.session.commit()
    except (NotFound, Forbidden):
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        flash_error(error.detail)
    else:
        flash_ok(_("%(name)s is opening (%(count)s device(s)).", name=point.name, count=len(rows)))
    target = url_for("web.cars", cid=point.community_id, _anchor=f"barrier-{point.id}")
    return redirect(target, 303)


# The blocked-plate list ------------------------------------------------------------------------


def _blocked_page(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
) -> str:
    rows = list(
        db.session.scalars(
            scope.query(BlockedPlate)
            .where(BlockedPlate.community_id == community.id)
            .order_by(BlockedPlate.plate)
        )
    )
    return render_template(
        "blocked_plates.html",
        community=community,
        rows=rows,
        names=user_names(row.created_by_user_id for row in rows),
        can_edit=scope.can_write(BlockedPlate),
        values=values or MultiDict(),
        errors=errors or {},
    )


@bp.get("/communities/<cid>/blocked-plates")
@login_required
def blocked_plates(cid: str) -> str:
    scope = desk_scope()
    return _blocked_page(scope, scope.get(Community, cid))


@bp.post("/communities/<cid>/blocked-plates")
@login_required
def blocked_plate_add(cid: str) -> Any:
    scope = desk_scope()
    community = scope.get(Community, cid)
    scope.require_write(BlockedPlate)
    form = request.form
    payload = {name: form.get(name, "").strip() for name in ("plate", "reason")}
    errors: dict[str, list[str]] = {}
    if not payload["plate"]:
        errors["plate"] = [_("Enter the plate.")]
    if not payload["reason"]:
        errors["reason"] = [_("Say why: the officer reads it in the alert.")]
    if errors:
        return _blocked_page(scope, community, form, errors), 422
    try:
        data = BlockedPlateInputSchema().load(payload)
        row = vehicles.block_plate(scope, community.id, data)
        db.session.commit()
    except ma.ValidationError as error:
        errors, status = flatten_messages(error.messages), 422
    except (NotFound, Forbidden):
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()  # nothing half-stored
        errors = flatten_messages(error.extensions.get("errors") or {"plate": [error.detail]})
        status = error.status
    if errors:
        return _blocked_page(scope, community, form, errors), status
    flash_ok(_("%(plate)s is blocked: barriers refuse it and alert the officer.", plate=row.plate))
    return redirect(url_for("web.blocked_plates", cid=community.id), 303)


@bp.post("/blocked-plates/<bid>/remove")
@login_required
def blocked_plate_remove(bid: str) -> Response:
    scope = desk_scope()
    row = scope.writable(BlockedPlate, bid)
    plate, community_id = row.plate, row.community_id
    vehicles.unblock_plate(scope, row.id)
    db.session.commit()
    flash_ok(_("%(plate)s is no longer blocked.", plate=plate))
    return redirect(url_for("web.blocked_plates", cid=community_id), 303)
