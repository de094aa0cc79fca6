"""Decisions doors made from their allowlists while offline, stored when they are uploaded.

A door that cannot reach the server decides from its signed allowlist (docs/protocol.md
section 6) and uploads every decision, grant or deny, as an ``offline_decision`` event. The
worker stores the device event once per ``(device, seq)`` (``server.worker.ingest``) and
calls ``record_offline_decision``, which:

1. stores the access event as the door decided it, ``offline`` and at the door's ``ts``:
   the credential type, the door's decision and reason, the person the door matched (only
   a person of the device's community: a ``pid`` of another is not linked) and, in its
   details, ``list_version``, ``seq``, ``direction`` and, for a code, its serial (never the
   token);
2. judges the same presenter at that instant with the server's own data, read only: the
   ordinary policy (``gatekeeper.policy.decide_access`` or ``decide_pass``) on the card's
   holder, the code's resident or the matched face's person, with the card's switch as it
   stood then. No pass use is spent, no anti-passback state moves, nothing is locked out,
   and no ``open`` is queued: the door has long opened or not. A door mode is not replayed
   (the lockdown in force then is the door's list's business). Where the door granted and
   the server would refuse, the details say ``would_refuse`` (the server's reason) and the
   officers get an ``offline_grant_refused`` alert, one per device, person and hour;
3. runs the alert rules that live events run (spoofing, plate against face, card against
   the walk; the wandering jobs read the stored events themselves), late; an alert they
   raise or update says it was decided offline and when (``summaries.decided_offline``).

The caller commits (the device event and all this are stored together).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from gatekeeper import passtokens, policy
from gatekeeper.identity import mask_name
from gatekeeper.vocabulary import AlertType, CredentialType, Decision, Reason, Severity
from server.access import qr
from server.access.decision import Door, point_view, subject_of
from server.alerts import cross_checks, summaries
from server.alerts import rules as alert_rules
from server.alerts.service import raise_alert
from server.core.localtime import local_time
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    Card,
    Community,
    Device,
    DeviceEvent,
    Person,
    VisitorPass,
)
from server.passes import keys as passkeys

_LOGGER = logging.getLogger(__name__)

# The rule stored with every offline decision: the door decided from its list.
OFFLINE_RULE = "allowlist.offline"


class _Judged:
    """Who the server finds behind what was presented, and what it would decide (if it can)."""

    def __init__(self) -> None:
        self.person: Person | None = None  # the server's presenter (a card's holder ...)
        self.decision: policy.AccessDecision | None = None  # the server's, when it decides
        self.visitor_pass: VisitorPass | None = None


def record_offline_decision(device: Device, uploaded: DeviceEvent) -> AccessEvent:
    """Store, judge and alert on the ``offline_decision`` ``uploaded`` of ``device``."""
    payload = uploaded.payload
    at = uploaded.occurred_at
    community = db.session.get(Community, device.community_id)
    point = (
        db.session.get(AccessPoint, device.access_point_id)
        if device.access_point_id is not None
        else None
    )
    credential = CredentialType(payload["credential"])
    details: dict[str, Any] = {
        "device_event_id": uploaded.id,
        "seq": uploaded.seq,
        "list_version": payload["list_version"],
    }
    if payload.get("direction"):
        details["direction"] = payload["direction"]
    if payload.get("card"):
        details["uid"] = payload["card"]
    # The door's person: linked only when they are of the device's community.
    person = None
    pid = payload.get("pid")
    if pid is not None:
        person = db.session.get(Person, pid)
        if person is None or person.community_id != device.community_id:
            person = None
            details["detail"] = "the door's person is not of this community"
    judged = _judge(device, point, community, credential, payload, at, details)
    decision = Decision(payload["decision"])
    event = AccessEvent(
        community_id=device.community_id,
        occurred_at=at,
        access_point_id=device.access_point_id,
        device_id=device.id,
        credential_type=credential,
        direction=payload.get("direction"),
        decision=decision,
        reason=payload["reason"],
        rule=OFFLINE_RULE,
        person_id=person.id if person is not None else None,
        pass_id=judged.visitor_pass.id if judged.visitor_pass is not None else None,
        details=details,
        offline=True,
    )
    refused = (
        decision is Decision.GRANT and judged.decision is not None and not judged.decision.granted
    )
    if refused:
        details["would_refuse"] = judged.decision.reason.value
        if judged.decision.detail:
            details["would_refuse_detail"] = judged.decision.detail
    db.session.add(event)
    db.session.flush()
    if refused:
        _alert_refused(event, device, community, point, person or judged.person)
    _run_rules(event, community)
    return event


def _judge(
    device: Device,
    point: AccessPoint | None,
    community: Community,
    credential: CredentialType,
    payload: dict[str, Any],
    at: datetime,
    details: dict[str, Any],
) -> _Judged:
    """The server's own decision on the presenter at ``at``, with no side effect."""
    judged = _Judged()
    if point is None:  # a device bound to no access point decides nothing
        details["detail"] = "the device serves no access point"
        return judged
    door = Door(device=device, point=point, community=community)
    view = point_view(point, community)
    held: policy.CredentialView | None = None
    if credential is CredentialType.CARD:
        card = db.session.scalar(
            select(Card).where(Card.community_id == community.id, Card.uid == payload["card"])
        )
        if card is None:
            judged.decision = _deny(Reason.UNKNOWN_CARD, "no card with this uid")
            return judged
        details["card_id"] = card.id
        judged.person = db.session.get(Person, card.person_id)
        held = policy.CredentialView(
            kind=CredentialType.CARD,
            # As the card stood then: one disabled later was still good at ``at``.
            disabled=card.disabled_at is not None and card.disabled_at <= at,
            valid_from=card.valid_from,
            valid_until=card.valid_until,
        )
    elif credential is CredentialType.QR:
        try:
            claims = passkeys.verify(payload["token"])
        except passtokens.TokenError as error:
            judged.decision = _deny(Reason.PASS_INVALID, f"{error.problem.value}: {error.detail}")
            return judged
        details["serial"] = claims.serial.hex()
        if claims.community_tag != passtokens.community_tag(community.id):
            judged.decision = _deny(Reason.NOT_AUTHORIZED_HERE, "a code of another community")
            return judged
        if claims.kind is passtokens.TokenKind.PASS:
            judged.visitor_pass = db.session.scalar(
                select(VisitorPass).where(
                    VisitorPass.community_id == community.id,
                    VisitorPass.serial == claims.serial.hex(),
                )
            )
            judged.decision = (
                _deny(Reason.PASS_INVALID, "no pass with this serial")
                if judged.visitor_pass is None
                else qr.pass_decision(judged.visitor_pass, door, at, spend=False)
            )
            return judged
        judged.person = db.session.scalar(
            select(Person).where(
                Person.community_id == community.id, Person.code_serial == claims.serial.hex()
            )
        )
        held = policy.CredentialView(
            kind=CredentialType.QR,
            valid_from=claims.not_before,
            valid_until=claims.not_after + timedelta(seconds=qr.RESIDENT_CODE_GRACE_S),
        )
        if judged.person is None:
            judged.decision = _deny(Reason.PASS_INVALID, "no resident has this code")
            return judged
    else:  # a face: the server has only the door's match
        pid = payload.get("pid")
        person = db.session.get(Person, pid) if pid is not None else None
        if person is None or person.community_id != community.id:
            judged.decision = _deny(Reason.UNKNOWN_FACE, "no person of this community matched")
            return judged
        judged.person = person
        held = policy.CredentialView(kind=CredentialType.FACE)
    subject, _kind = subject_of(judged.person, held)
    judged.decision = policy.decide_access(subject, view, at)
    return judged


def _deny(reason: Reason, detail: str) -> policy.AccessDecision:
    return policy.AccessDecision(Decision.DENY, reason, policy.Rule.NO_ROLE, detail)


def _hour(at: datetime) -> str:
    return at.replace(minute=0, second=0, microsecond=0).isoformat()


def _alert_refused(
    event: AccessEvent,
    device: Device,
    community: Community,
    point: AccessPoint | None,
    person: Person | None,
) -> Alert:
    """``offline_grant_refused``: one open alert per device, person and hour of ``ts``."""
    place = point.name if point is not None else device.name
    when = local_time(event.occurred_at, community.timezone)
    reason = Reason(event.details["would_refuse"])
    who = person.id if person is not None else "-"
    return raise_alert(
        community_id=community.id,
        type=AlertType.OFFLINE_GRANT_REFUSED,
        severity=Severity.HIGH,
        summary=summaries.offline_grant_refused(
            place, mask_name(person.name) if person is not None else None, when, reason
        ),
        access_point_id=event.access_point_id,
        device_id=device.id,
        evidence={
            "event_ids": [event.id],
            "person_id": person.id if person is not None else None,
            "would_refuse": reason.value,
            "decided_offline_at": event.occurred_at.isoformat(),
            "list_version": event.details["list_version"],
        },
        dedup_key=f"offline_grant_refused:{device.id}:{who}:{_hour(event.occurred_at)}",
    )


def _run_rules(event: AccessEvent, community: Community) -> None:
    """The rules a live event runs (``decision.decide``), late; their alerts say offline."""
    when = local_time(event.occurred_at, community.timezone)
    with summaries.decided_offline(event.id, event.occurred_at, when):
        alert_rules.after_access_event(event)  # repeated spoofing at this door
        cross_checks.after_access_event(event)  # plate against face, card against the walk
