"""The car-gate page's temporary cars: the community's tariff in words, the cars at an exit
waiting to pay with their fee, and the button that records the payment and opens the exit
barrier (``server.access.parking``).

Staff and admins confirm payments; officers read the list (no button). A confirmation names
the method (cash, WeChat Pay, Alipay: recorded, nothing is charged here) and carries the fee
the guard saw: if the car was read again meanwhile and its fee grew, the payment is refused
(409, flashed) and the page shows the new fee.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import pgettext
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.tariff import Tariff, yuan
from server.access import parking
from server.community import settings as community_settings
from server.community import structure
from server.core.errors import DomainError, Forbidden, NotFound
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import AccessPoint, Community, ParkingTicket, PaymentMethod
from server.web import bp
from server.web.cars import how_long
from server.web.helpers import desk_scope, flash_error, flash_ok, flatten_messages


def tariff_words(tariff: Tariff) -> str:
    """The tariff as the guard reads it: ``15 free minutes, ¥5.00 per started hour, ...``."""
    parts = [
        _("%(minutes)s free minutes", minutes=tariff.free_minutes),
        _("%(price)s per started hour", price=yuan(tariff.hour_fen)),
    ]
    if tariff.night_hour_fen is not None:
        parts.append(
            _(
                "%(price)s per hour starting %(start)s-%(end)s",
                price=yuan(tariff.night_hour_fen),
                start=tariff.night_start,
                end=tariff.night_end,
            )
        )
    if tariff.daily_cap_fen is not None:
        parts.append(_("at most %(price)s a day", price=yuan(tariff.daily_cap_fen)))
    return pgettext("between tariff parts", "; ").join(parts)


def parking_card(scope: Scope, community: Community, now: datetime) -> dict[str, Any]:
    """What the cars page's temporary-cars card shows."""
    settings = community_settings.effective(community.settings)
    waiting = parking.waiting(scope, community.id)
    points = {
        point.id: point.name
        for point in db.session.scalars(
            scope.query(AccessPoint).where(
                AccessPoint.id.in_({t.exit_access_point_id for t in waiting} - {None})
            )
        )
    }
    return {
        "allowed": settings.temporary_cars,
        "tariff": tariff_words(parking.tariff_of(settings)),
        "can_pay": scope.can_write(ParkingTicket),
        "methods": [(method.value, word(method)) for method in PaymentMethod],
        "waiting": [
            {
                "ticket": ticket,
                "fee": yuan(ticket.fee_fen or 0),
                "stay": how_long((ticket.exit_read_at or now) - ticket.entered_at),
                "barrier": points.get(ticket.exit_access_point_id or "", "—"),
            }
            for ticket in waiting
        ],
    }


@bp.post("/parking-tickets/<ticket_id>/pay")
@login_required
def parking_pay(ticket_id: str) -> Response:
    """The guard took the fee: record it (audited) and open the exit barrier."""
    scope = desk_scope()
    ticket = scope.get(ParkingTicket, ticket_id)
    community_id = ticket.community_id
    target = url_for("web.cars", cid=community_id, _anchor="parking")
    if not scope.can_write(ParkingTicket):
        raise Forbidden(_("This %(role)s account cannot take payments.", role=word(scope.role)))
    try:
        method = PaymentMethod(request.form.get("method", ""))
    except ValueError:
        flash_error(_("Choose how the fee was paid."))
        return redirect(target, 303)
    try:
        amount = int(request.form.get("amount_fen", ""))
    except ValueError:
        flash_error(_("The fee is missing: reload the page."))
        return redirect(target, 303)
    try:
        parking.pay(scope, ticket.id, method, amount)
        db.session.commit()
    except (NotFound, Forbidden):
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()  # nothing half-stored
        flash_error(error.detail)
    else:
        flash_ok(
            _(
                "%(plate)s paid %(fee)s (%(method)s): the barrier is opening.",
                plate=ticket.plate,
                fee=yuan(amount),
                method=word(method),
            )
        )
    return redirect(target, 303)


# The tariff ------------------------------------------------------------------------------------

_YUAN = re.compile(r"^\d{1,5}(\.\d{1,2})?$", re.ASCII)
# The form's price fields and the settings they set (fen); the optional ones may be empty.
_PRICES = {
    "hour": ("parking_hour_fen", False),
    "night_hour": ("parking_night_hour_fen", True),
    "daily_cap": ("parking_daily_cap_fen", True),
}


def _yuan_field(value: str) -> str:
    """Fen as the form shows them: ``12.50`` (no sign, no ¥)."""
    return f"{int(value) // 100}.{int(value) % 100:02d}"


def _tariff_values(community: Community) -> MultiDict[str, str]:
    settings = community_settings.effective(community.settings)
    values = MultiDict(
        {
            "temporary_cars": "on" if settings.temporary_cars else "",
            "free_minutes": str(settings.parking_free_minutes),
            "night_start": settings.parking_night_start,
            "night_end": settings.parking_night_end,
        }
    )
    for name, (key, _optional) in _PRICES.items():
        fen = getattr(settings, key)
        values[name] = "" if fen is None else _yuan_field(fen)
    return values


def _tariff_changes(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The settings a tariff form asks for, and what is wrong with it (by form field)."""
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {"temporary_cars": form.get("temporary_cars") == "on"}
    minutes = form.get("free_minutes", "").strip()
    if minutes.isdigit() and minutes.isascii():
        changes["parking_free_minutes"] = int(minutes)
    else:
        errors["free_minutes"] = [_("Whole minutes, 0 or more.")]
    for name, (key, optional) in _PRICES.items():
        text = form.get(name, "").strip().removeprefix("¥")
        if not text and optional:
            changes[key] = None
        elif _YUAN.match(text):
            changes[key] = int((Decimal(text) * 100).to_integral_value())
        else:
            errors[name] = [_("A price in yuan such as 5 or 12.50.")]
    for name in ("night_start", "night_end"):
        changes[f"parking_{name}"] = form.get(name, "").strip()
    return changes, errors


def _tariff_page(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str],
    errors: dict[str, list[str]] | None = None,
) -> str:
    return render_template(
        "parking_tariff.html",
        community=community,
        values=values,
        errors=errors or {},
        can_edit=scope.can_write(Community),
        tariff=tariff_words(parking.community_tariff(community)),
    )


@bp.get("/communities/<cid>/parking-tariff")
@login_required
def parking_tariff(cid: str) -> str:
    """The temporary cars' tariff: staff and admins change it, officers read it."""
    scope = desk_scope()
    community = scope.get(Community, cid)
    return _tariff_page(scope, community, _tariff_values(community))


@bp.post("/communities/<cid>/parking-tariff")
@login_required
def parking_tariff_save(cid: str) -> Any:
    """Save the tariff through the settings' own validation (audited as a community change);
    a bad value re-renders the form with its message (422) and stores nothing."""
    scope = desk_scope()
    community = scope.get(Community, cid)
    scope.require_write(Community)
    changes, errors = _tariff_changes(request.form)
    if not errors:
        try:
            structure.update_community(scope, community.id, {"settings": changes})
            db.session.commit()
        except DomainError as error:
            db.session.rollback()  # nothing half-stored
            nested = (error.extensions.get("errors") or {}).get("settings") or {}
            errors = {
                _FORM_NAMES.get(key, key): [str(m) for m in messages]
                for key, messages in flatten_messages(nested).items()
            } or {"": [str(error.detail)]}
    if errors:
        return _tariff_page(scope, community, request.form, errors), 422
    flash_ok(_("The tariff is saved: it applies to every exit from now on."))
    return redirect(url_for("web.parking_tariff", cid=community.id), 303)


# Settings keys -> the form's field names (for the settings' own messages).
_FORM_NAMES = {
    "parking_free_minutes": "free_minutes",
    "parking_hour_fen": "hour",
    "parking_night_hour_fen": "night_hour",
    "parking_daily_cap_fen": "daily_cap",
    "parking_night_start": "night_start",
    "parking_night_end": "night_end",
}
