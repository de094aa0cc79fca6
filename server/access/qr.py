"""QR codes at the door: visitor passes and residents' rotating codes.

``verify`` takes the texts a terminal (or the frame decoder) read at a ``Door``, picks the
first whose signature checks, and decides:

- a **pass** (token kind 1): ``gatekeeper.policy.decide_pass`` on the stored pass (the
  token only names it: revocation, uses and the door list come from the row); a grant
  spends one use with a single conditional ``UPDATE``, so two doors scanning a
  single-use pass at the same instant grant once;
- a **resident code** (kind 2): the person it names goes through the ordinary policy,
  with the code's 30-second window as the credential's window.

Everything ends in ``server.access.decision.decide``: the event is stored (linked to the pass),
a grant queues ``open`` for the door, and the ``Verdict`` comes back.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm.attributes import set_committed_value

from gatekeeper import passtokens, policy
from gatekeeper.vocabulary import CredentialType, Decision, Reason
from server.access import doormodes as door_modes
from server.access.decision import Door, Presented, Verdict, decide, issuer_subject
from server.extensions import db
from server.models import Person, VisitorPass, pass_access_points, utcnow
from server.notifications import service as notifications
from server.passes import keys as passkeys

# A resident's code changes every RESIDENT_CODE_STEP_S; a code shown just before the change
# still opens for RESIDENT_CODE_GRACE_S after it (the scan and the request take a moment).
RESIDENT_CODE_STEP_S = 30
RESIDENT_CODE_GRACE_S = 5
_MAX_CODES = 8  # codes tried from one frame


def _invalid(detail: str, rule: str = "token.invalid", **details: Any) -> Presented:
    return Presented(
        CredentialType.QR,
        unknown_reason=Reason.PASS_INVALID,
        unknown_rule=rule,
        details={"detail": detail, **details},
    )


def _first_verified(
    texts: Sequence[str],
) -> tuple[str, passtokens.Claims] | passtokens.TokenError:
    """The first text whose signature checks, or the first text's error (``texts`` non-empty)."""
    errors: list[passtokens.TokenError] = []
    for text in texts[:_MAX_CODES]:
        try:
            return text, passkeys.verify(text)
        except passtokens.TokenError as error:
            errors.append(error)
    return errors[0]


@cache
def _pass_statement() -> Select[Any]:
    """A community's pass by serial, one row per access point of it; built once."""
    return (
        select(VisitorPass, pass_access_points.c.access_point_id)
        .outerjoin(pass_access_points, pass_access_points.c.pass_id == VisitorPass.id)
        .where(
            VisitorPass.community_id == bindparam("community_id"),
            VisitorPass.serial == bindparam("serial"),
        )
    )


def _pass_presented(
    door: Door, claims: passtokens.Claims, at: datetime, direction: str | None
) -> Presented:
    serial = claims.serial.hex()
    # The pass with the ids of its access points: one row per point, one statement.
    rows = db.session.execute(
        _pass_statement(), {"community_id": door.community.id, "serial": serial}
    ).all()
    if not rows:
        return _invalid("no such pass (deleted?)", "pass.unknown", serial=serial)
    visitor_pass = rows[0][0]
    points = frozenset(point_id for _row, point_id in rows if point_id is not None)
    decision = pass_decision(
        visitor_pass, door, at, spend=direction != "out", access_point_ids=points
    )
    return Presented(
        CredentialType.QR,
        visitor_pass=visitor_pass,
        decision=decision,
        details={"key_id": claims.key_id},
    )


def pass_decision(
    visitor_pass: VisitorPass,
    door: Door,
    at: datetime,
    *,
    spend: bool,
    access_point_ids: frozenset[str] | None = None,
) -> policy.AccessDecision:
    """``decide_pass`` for the pass at the door's point; a grant spends a use if ``spend``.

    Shared by QR codes and barrier plates. A lockdown over the door denies first
    (``lockdown``), and spends nothing. ``access_point_ids``: the pass's, when the caller
    read them already (else its ``access_points`` are read).
    """
    held = door_modes.lockdown_for(door, frozenset(), at)
    if held is not None:
        return held
    issuer = None
    if visitor_pass.issued_by_person_id is not None:
        # Whether the issuer still lives here: memberships and leases, not a permit.
        issuer = issuer_subject(visitor_pass.issued_by_person_id)
    if access_point_ids is None:
        access_point_ids = frozenset(p.id for p in visitor_pass.access_points)
    view = policy.PassView(
        access_point_ids=access_point_ids,
        valid_from=visitor_pass.valid_from,
        valid_until=visitor_pass.valid_until,
        max_uses=visitor_pass.max_uses,
        uses=visitor_pass.uses,
        revoked=visitor_pass.revoked_at is not None,
        issuer=issuer,
    )
    decision = policy.decide_pass(view, door.view, at)
    if decision.granted and spend and not _spend_use(visitor_pass):
        return policy.AccessDecision(
            Decision.DENY,
            Reason.PASS_USED_UP,
            policy.Rule.PASS_USED_UP,
            "the last use was spent at another door a moment ago",
        )
    if decision.granted and spend:  # a use was counted: the issuer is told (queued, not sent)
        notifications.pass_used(visitor_pass, door.point.name, at)
    return decision


def _spend_use(visitor_pass: VisitorPass) -> bool:
    """Count one use if one is left: one conditional UPDATE, atomic on SQLite and PostgreSQL."""
    uses = db.session.scalar(
        update(VisitorPass)
        .where(
            VisitorPass.id == visitor_pass.id,
            VisitorPass.revoked_at.is_(None),
            VisitorPass.uses < VisitorPass.max_uses,
        )
        .values(uses=VisitorPass.uses + 1)
        .returning(VisitorPass.uses)
        .execution_options(synchronize_session=False)
    )
    if uses is None:
        return False
    set_committed_value(visitor_pass, "uses", uses)
    return True


@cache
def _resident_statement() -> Select[Any]:
    """A community's resident by code serial; built once."""
    return select(Person).where(
        Person.community_id == bindparam("community_id"),
        Person.code_serial == bindparam("serial"),
    )


def _resident_presented(door: Door, claims: passtokens.Claims, at: datetime) -> Presented:
    serial = claims.serial.hex()
    person = db.session.scalar(
        _resident_statement(), {"community_id": door.community.id, "serial": serial}
    )
    if person is None:
        return _invalid("no resident has this code", "resident_code.unknown", serial=serial)
    credential = policy.CredentialView(
        kind=CredentialType.QR,
        valid_from=claims.not_before,
        valid_until=claims.not_after + timedelta(seconds=RESIDENT_CODE_GRACE_S),
    )
    return Presented(
        CredentialType.QR,
        person=person,
        credential=credential,
        details={"resident_code": True, "key_id": claims.key_id},
    )


def verify(
    door: Door,
    texts: Sequence[str],
    *,
    direction: str | None = None,
    source: str = "token",
    at: datetime | None = None,
) -> Verdict:
    """Decide on the code(s) read at ``door``; store the event; the caller commits."""
    at = at or utcnow()
    if not texts:
        presented = _invalid("no QR code found in the frame", "token.absent", source=source)
    else:
        found = _first_verified(texts)
        if isinstance(found, passtokens.TokenError):
            presented = _invalid(
                found.detail, f"token.{found.problem.value}", source=source, codes=len(texts)
            )
        else:
            _text, claims = found
            if claims.community_tag != passtokens.community_tag(door.community.id):
                presented = Presented(
                    CredentialType.QR,
                    unknown_reason=Reason.NOT_AUTHORIZED_HERE,
                    unknown_rule="token.other_community",
                    details={"detail": "the code belongs to another community"},
                )
            elif claims.kind is passtokens.TokenKind.PASS:
                presented = _pass_presented(door, claims, at, direction)
            else:
                presented = _resident_presented(door, claims, at)
            presented = replace(presented, details={**(presented.details or {}), "source": source})
    return decide(door, presented, direction=direction, at=at)


# --- residents' rotating codes ---------------------------------------------------------------


def resident_code(person: Person, at: datetime | None = None) -> tuple[str, datetime]:
    """The person's "scan to open" token for the current 30-second step, and when it ends.

    The person gets a random code serial on first use; the caller commits.
    """
    at = at or utcnow()
    key_id, private = passkeys.signing_key(at)  # before any write of ours (SQLite locks)
    if person.code_serial is None:
        person.code_serial = secrets.token_hex(passtokens.SERIAL_BYTES)
        db.session.flush()
    start, end = passtokens.rotating_window(at, RESIDENT_CODE_STEP_S)
    claims = passtokens.Claims(
        kind=passtokens.TokenKind.RESIDENT_CODE,
        key_id=key_id,
        community_tag=passtokens.community_tag(person.community_id),
        serial=bytes.fromhex(person.code_serial),
        not_before=start,
        not_after=end,
    )
    return passtokens.sign(claims, private), end
