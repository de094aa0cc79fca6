"""The car-gate page's temporary cars: the community's tariff in words, the cars at an exit
waiting to pay with their fee, and the button that records the payment and opens the exit
barrier (``server.access.parking``).

Staff and admins confirm payments; officers read the list (no button). A confirmation names
the method (cash, WeChat Pay, Alipay: recorded, nothing is charged here) and carries the fee
the guard saw: if the car was read again meanwhile and its fee grew, the payment is refused
(409, flashed) and the page shows the new fee.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import pgettext
from flask_login import login_required
from werkzeug.wrappers import Response

from gatekeeper.tariff import Tariff, yuan
from server.access import parking
from server.community import settings as community_settings
from server.core.errors import DomainError, Forbidden, NotFound
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import AccessPoint, Community, ParkingTicket, PaymentMethod
from server.web import bp
from server.web.cars import how_long
from server.web.helpers import desk_scope, flash_error, flash_ok


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
