"""Visitor passes that doors admitted offline, counted when their ``pass_used`` events arrive.

A door that cannot reach the server checks a pass's QR code itself (signature, community,
window, access point, its own use count: docs/devices.md) and opens. Its ``pass_used``
event comes later; this stores the use as the access event the server would have stored
online, linked to the pass, and counts it. The door has already opened, so the use is
counted even past ``max_uses`` (offline counts are best-effort) and the event says what
the server would have refused: ``over_used``, ``revoked``, ``outside_window``,
``not_listed``. A code the server cannot verify is stored as a ``pass_invalid`` denial.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from gatekeeper import passtokens
from gatekeeper.policy import Rule, pass_window
from gatekeeper.vocabulary import CredentialType, Decision, PassStatus, Reason
from server.extensions import db
from server.models import AccessEvent, AccessPoint, Device, DeviceEvent, VisitorPass
from server.notifications import service as notifications
from server.passes import keys as passkeys

_LOGGER = logging.getLogger(__name__)

# The rule stored with every offline use: the door decided, the server only records.
OFFLINE_RULE = Rule.PASS_OFFLINE.value


class _Invalid(Exception):
    """Why an uploaded code names no pass of this community (the event's detail)."""


def record_offline_use(device: Device, uploaded: DeviceEvent) -> AccessEvent:
    """Store the access event for the ``pass_used`` event ``uploaded`` of ``device``.

    A verified pass of the device's community gets a grant and one more use; anything
    else a ``pass_invalid`` denial with the reason in ``details["detail"]``. The caller
    commits (the device event and this are stored together, once per ``(device, seq)``).
    """
    token = uploaded.payload["token"]
    details: dict[str, Any] = {"offline": True, "device_event_id": uploaded.id}
    event = AccessEvent(
        community_id=device.community_id,
        occurred_at=uploaded.occurred_at,
        access_point_id=device.access_point_id,
        device_id=device.id,
        credential_type=CredentialType.QR,
        direction=uploaded.payload.get("direction"),
        rule=OFFLINE_RULE,
        details=details,
    )
    try:
        visitor_pass, claims = _pass_of(device, token)
    except _Invalid as problem:
        event.decision, event.reason = Decision.DENY, Reason.PASS_INVALID.value
        details["detail"] = str(problem)
        _LOGGER.warning("device %s uploaded an offline use of a bad code: %s", device.id, problem)
    else:
        event.decision, event.reason = Decision.GRANT, Reason.VISITOR_PASS.value
        event.pass_id = visitor_pass.id
        # One statement, so two uploads of the same pass at once cannot lose a use.
        uses = db.session.execute(
            update(VisitorPass)
            .where(VisitorPass.id == visitor_pass.id)
            .values(uses=VisitorPass.uses + 1)
            .returning(VisitorPass.uses)
        ).scalar_one()
        details.update(serial=claims.serial.hex(), uses=uses)
        details.update(_what_online_would_refuse(visitor_pass, device, uploaded, uses))
        point = db.session.get(AccessPoint, device.access_point_id)
        notifications.pass_used(visitor_pass, point.name, uploaded.occurred_at)  # the issuer
    db.session.add(event)
    db.session.flush()
    return event


def _pass_of(device: Device, token: str) -> tuple[VisitorPass, passtokens.Claims]:
    """The pass a code names, checked as the door should have; raises ``_Invalid``."""
    if device.access_point_id is None:
        raise _Invalid("the device serves no access point")
    try:
        claims = passkeys.verify(token)
    except passtokens.TokenError as error:
        raise _Invalid(f"{error.problem.value}: {error.detail}") from None
    if claims.kind is not passtokens.TokenKind.PASS:
        raise _Invalid("resident codes are checked online only")
    if claims.community_tag != passtokens.community_tag(device.community_id):
        raise _Invalid("a code of another community")
    visitor_pass = db.session.scalar(
        select(VisitorPass).where(
            VisitorPass.community_id == device.community_id,
            VisitorPass.serial == claims.serial.hex(),
        )
    )
    if visitor_pass is None:
        raise _Invalid("no pass with this serial")
    return visitor_pass, claims


def _what_online_would_refuse(
    visitor_pass: VisitorPass, device: Device, uploaded: DeviceEvent, uses: int
) -> dict[str, bool]:
    """Flags for what the server would have refused had the door asked it."""
    at = uploaded.occurred_at
    flags = {
        "over_used": uses > visitor_pass.max_uses,
        "revoked": visitor_pass.revoked_at is not None and visitor_pass.revoked_at <= at,
        "outside_window": pass_window(visitor_pass.valid_from, visitor_pass.valid_until, at)
        is not PassStatus.ACTIVE,
        "not_listed": all(p.id != device.access_point_id for p in visitor_pass.access_points),
    }
    return {name: True for name, raised in flags.items() if raised}
