"""Temporary cars (临时车): an unknown plate let in on a ticket, its fee at the exit, and the
payment that opens the barrier.

Where a community has ``temporary_cars`` on, a plate that is no resident's car, on no
visitor pass and not blocked may **enter** (``direction`` ``in``): the barrier answers
``grant`` / ``temporary_vehicle``, the car is inside (a ``VehiclePresence``) and a
``ParkingTicket`` holds its entry. At the **exit** (``direction`` ``out``) the fee is read
from the community's tariff (``gatekeeper.tariff``) for the stay so far:

- nothing to pay: ``grant`` / ``temporary_vehicle`` (rule ``parking.free``), the barrier
  opens and the ticket is closed;
- a fee: ``deny`` / ``payment_required`` (rule ``parking.unpaid``) with the ``parking``
  object (docs/protocol.md); the ticket waits on the car-gate page until staff or the
  guard confirm the payment (``pay``), which records who, how much and how, is audited,
  and sends ``open`` to the exit barrier. Another exit read before that charges the stay
  up to that read.
- A paid car read again at the exit within ``PAID_GRACE`` is let out without a new fee
  (rule ``parking.paid``).

Tickets are kept whatever the setting: a car that came in while temporary cars were
allowed still pays its way out after they are no longer. A car with no ticket at the exit
stays ``unknown_plate`` (the guard can open by remote open). Residents' cars and visitor
cars with a pass never get a ticket: they are decided before this module is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from gatekeeper import policy
from gatekeeper.tariff import Fee, Tariff, fee, yuan
from gatekeeper.vocabulary import CredentialType, Decision, Reason
from server.access import doormodes as door_modes
from server.access.decision import Door, Presented, Verdict
from server.community import settings as community_settings
from server.community.settings import CommunitySettings
from server.core import audit
from server.core.errors import Conflict
from server.core.scope import Scope
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Community,
    DeviceCommand,
    ParkingTicket,
    PaymentMethod,
    TicketStatus,
    VehiclePresence,
    utcnow,
)
from server.models.parking import CURRENCY, OPEN_STATUSES

# A car that paid and is read at the exit again this soon is let out without a new fee.
PAID_GRACE = timedelta(minutes=15)


def tariff_of(settings: CommunitySettings) -> Tariff:
    """The community's tariff from its settings (validated when they were stored)."""
    return Tariff(
        free_minutes=settings.parking_free_minutes,
        hour_fen=settings.parking_hour_fen,
        night_hour_fen=settings.parking_night_hour_fen,
        night_start=settings.parking_night_start,
        night_end=settings.parking_night_end,
        daily_cap_fen=settings.parking_daily_cap_fen,
    )


def community_tariff(community: Community) -> Tariff:
    return tariff_of(community_settings.effective(community.settings))


@dataclass(frozen=True)
class Visit:
    """What parking made of an unknown plate at a barrier (before ``decide`` stores it)."""

    presented: Presented
    rule: policy.Rule
    ticket: ParkingTicket | None  # the ticket of an exit (None for an entry)
    fee: Fee | None = None  # what an exit read came to (None for an entry or a paid car)


def _visit(
    decision: Decision,
    reason: Reason,
    rule: policy.Rule,
    ticket: ParkingTicket | None = None,
    charged: Fee | None = None,
) -> Visit:
    details: dict[str, Any] = {}
    if ticket is not None:
        details["ticket_id"] = ticket.id
    if charged is not None:
        details["fee_fen"] = charged.fee_fen
    presented = Presented(
        CredentialType.PLATE,
        decision=policy.AccessDecision(decision, reason, rule),
        details=details or None,
    )
    return Visit(presented, rule, ticket, charged)


def _latest_ticket(community_id: str, plate: str) -> ParkingTicket | None:
    return db.session.scalar(
        select(ParkingTicket)
        .where(ParkingTicket.community_id == community_id, ParkingTicket.plate == plate)
        .order_by(ParkingTicket.entered_at.desc(), ParkingTicket.id.desc())
        .limit(1)
    )


def visit(door: Door, plate: str, direction: str | None, at: datetime) -> Visit | None:
    """A temporary car's entry or exit, or None when parking has nothing to say (the plate
    stays ``unknown_plate``): no direction, entries where the community does not allow
    temporary cars, exits of a plate without a ticket."""
    community = door.community
    if direction == "in":
        if not community_settings.effective(community.settings).temporary_cars:
            return None
        # A lockdown (a temporary car has no role) and a closed barrier keep it out.
        closed = door_modes.lockdown_for(door, frozenset(), at) or policy.point_closed(
            door.view, at
        )
        if closed is not None:
            return Visit(Presented(CredentialType.PLATE, decision=closed), closed.rule, None)
        return _visit(Decision.GRANT, Reason.TEMPORARY_VEHICLE, policy.Rule.PARKING_ENTRY)
    if direction != "out":
        return None
    ticket = _latest_ticket(community.id, plate)
    if ticket is None:
        return None
    if ticket.status is TicketStatus.PAID:
        if ticket.paid_at is None or at - ticket.paid_at > PAID_GRACE:
            return None
        return _visit(Decision.GRANT, Reason.TEMPORARY_VEHICLE, policy.Rule.PARKING_PAID, ticket)
    if ticket.status not in OPEN_STATUSES:
        return None
    charged = fee(community_tariff(community), ticket.entered_at, at, community.timezone)
    if charged.fee_fen == 0:
        rule = policy.Rule.PARKING_FREE
        return _visit(Decision.GRANT, Reason.TEMPORARY_VEHICLE, rule, ticket, charged)
    rule = policy.Rule.PARKING_UNPAID
    return _visit(Decision.DENY, Reason.PAYMENT_REQUIRED, rule, ticket, charged)


def record(found: Visit, verdict: Verdict, door: Door, plate: str, at: datetime) -> ParkingTicket:
    """Store what the barrier's read did to the ticket (a new ticket for an entry; the exit's
    fee, or the car gone) and add the ``parking`` object to the answer. The presence was
    opened or closed by the caller (``server.access.plate``)."""
    event = verdict.event
    ticket = found.ticket
    rule = found.rule
    if ticket is None:  # an entry
        for stale in db.session.scalars(
            select(ParkingTicket).where(
                ParkingTicket.community_id == event.community_id,
                ParkingTicket.plate == plate,
                ParkingTicket.status.in_(OPEN_STATUSES),
            )
        ):
            stale.status = TicketStatus.REENTERED
        presence = db.session.scalar(
            select(VehiclePresence.id).where(VehiclePresence.entry_event_id == event.id)
        )
        ticket = ParkingTicket(
            community_id=event.community_id,
            plate=plate,
            status=TicketStatus.INSIDE,
            presence_id=presence,
            entered_at=at,
            entry_event_id=event.id,
            entry_access_point_id=door.point.id,
        )
        db.session.add(ticket)
        db.session.flush()
        event.details = {**event.details, "ticket_id": ticket.id}
    elif found.fee is not None:  # an exit read: the fee up to now
        ticket.exit_read_at = at
        ticket.exit_event_id = event.id
        ticket.exit_access_point_id = door.point.id
        ticket.exit_device_id = door.device.id
        ticket.fee_fen = found.fee.fee_fen
        ticket.fee_breakdown = found.fee.as_json()
        if rule is policy.Rule.PARKING_FREE:
            ticket.status, ticket.exited_at = TicketStatus.FREE, at
        else:
            ticket.status = TicketStatus.DUE
    verdict.body["parking"] = answer(ticket, at)
    return ticket


def answer(ticket: ParkingTicket, at: datetime) -> dict[str, Any]:
    """The ``parking`` object of a barrier's answer (docs/protocol.md section 4)."""
    end = ticket.exited_at or ticket.exit_read_at or at
    body: dict[str, Any] = {
        "ticket_id": ticket.id,
        "entered_at": ticket.entered_at.isoformat(),
        "duration_s": max(0, int((end - ticket.entered_at).total_seconds())),
        "fee_fen": ticket.fee_fen or 0,
        "currency": CURRENCY,
        "status": ticket.status.value,
    }
    if ticket.paid_fen is not None:
        body["paid_fen"] = ticket.paid_fen
    return body


# Staff and the guard ----------------------------------------------------------------------------


def temporary_presences(presence_ids: set[str]) -> set[str]:
    """Which of these presences are temporary cars' (they have a ticket)."""
    if not presence_ids:
        return set()
    return set(
        db.session.scalars(
            select(ParkingTicket.presence_id).where(ParkingTicket.presence_id.in_(presence_ids))
        )
    )


def waiting(scope: Scope, community_id: str) -> list[ParkingTicket]:
    """The cars at an exit barrier waiting to pay, longest waiting first."""
    community = scope.get(Community, community_id)
    scope.require_read(ParkingTicket)
    return list(
        db.session.scalars(
            scope.query(ParkingTicket)
            .where(
                ParkingTicket.community_id == community.id,
                ParkingTicket.status == TicketStatus.DUE,
            )
            .order_by(ParkingTicket.exit_read_at, ParkingTicket.id)
        )
    )


def tickets(
    scope: Scope, community_id: str, status: TicketStatus | None = None, limit: int = 100
) -> list[ParkingTicket]:
    """The community's tickets, newest entry first (one status, or all)."""
    community = scope.get(Community, community_id)
    scope.require_read(ParkingTicket)
    query = scope.query(ParkingTicket).where(ParkingTicket.community_id == community.id)
    if status is not None:
        query = query.where(ParkingTicket.status == status)
    query = query.order_by(ParkingTicket.entered_at.desc(), ParkingTicket.id.desc()).limit(limit)
    return list(db.session.scalars(query))


def pay(
    scope: Scope,
    ticket_id: str,
    method: PaymentMethod,
    amount_fen: int | None = None,
) -> list[DeviceCommand]:
    """Staff or the guard took the fee: record who, how much and how, audit it, close the
    stay and send ``open`` to the exit barrier. The caller commits.

    The amount, when given, must be the fee due (no discounts here): a different amount is
    a 409 and nothing is stored. A ticket that is not waiting to pay is a 409 too.
    """
    ticket = scope.writable(ParkingTicket, ticket_id)
    # Two guards pressing at once: the second waits for the first, then finds it paid.
    db.session.refresh(ticket, with_for_update=True)
    if ticket.status is not TicketStatus.DUE or ticket.fee_fen is None:
        raise Conflict(
            _l("Ticket %(id)s is not waiting for a payment.", id=ticket.id),
            ticket_status=ticket.status.value,
        )
    due = ticket.fee_fen
    if amount_fen is not None and amount_fen != due:
        raise Conflict(
            _l("The fee due is %(fee)s.", fee=yuan(due)), fee_fen=due, amount_fen=amount_fen
        )
    point = db.session.get(AccessPoint, ticket.exit_access_point_id or "")
    devices = commands.actuators(point) if point is not None else []
    if not devices:
        raise Conflict(_l("No enabled barrier device serves this exit."))
    now = utcnow()
    door_modes.refuse_remote_open(scope, point, None, now)  # the payment opens: 403 lockdown
    event = AccessEvent(
        community_id=ticket.community_id,
        occurred_at=now,
        access_point_id=point.id,
        device_id=devices[0].id,
        credential_type=CredentialType.PLATE,
        direction="out",
        decision=Decision.GRANT,
        reason=Reason.TEMPORARY_VEHICLE.value,
        rule=policy.Rule.PARKING_PAID.value,
        details={
            "plate": ticket.plate,
            "ticket_id": ticket.id,
            "paid_fen": due,
            "payment_method": method.value,
            "user_id": scope.user.id,
            "username": scope.user.username,
        },
    )
    db.session.add(event)
    db.session.flush()
    ticket.status = TicketStatus.PAID
    ticket.paid_at = ticket.exited_at = now
    ticket.paid_fen = due
    ticket.payment_method = method
    ticket.paid_by_user_id = scope.user.id
    presence = db.session.get(VehiclePresence, ticket.presence_id or "")
    if presence is not None and presence.exited_at is None:
        presence.exited_at, presence.exit_event_id, presence.closed_reason = now, event.id, "exit"
    rows = commands.open_for(devices, event.id, point.open_ms, scope.user.id)
    audit.record(
        scope.user,
        "parking.payment",
        community_id=ticket.community_id,
        target=ticket,
        details={
            "plate": ticket.plate,
            "amount_fen": due,
            "currency": CURRENCY,
            "method": method.value,
            "event_id": event.id,
            "commands": [row.id for row in rows],
        },
    )
    return rows
