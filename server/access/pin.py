"""Keypad codes at the door: one-time courier codes (``server.couriers``) and the lockout.

``verify`` takes the digits typed at a ``Door`` whose access point has a keypad and decides:

- the keypad is **locked** (a ``KeypadLockout`` covers this instant): ``keypad_locked``,
  whatever the code, right ones included;
- the code's keyed hash names a code of this door: ``gatekeeper.policy.decide_pass`` on it
  (revoked or issuer gone, window, uses, the point's schedule); a grant spends the use with
  one conditional ``UPDATE``, so two requests at once grant once, and reads
  ``courier_code``;
- anything else is ``pin_invalid``.

Every denial but ``keypad_locked`` is a wrong code: the ``keypad_max_failures``-th within
``keypad_failure_window_minutes`` (counted from the access events, never before the last
lock ended) locks the keypad for ``keypad_lock_minutes`` and raises ``keypad_locked`` to
staff. Everything goes through ``server.access.decision.decide``: the event (with the code's
id and issuer, never the digits), the ``open`` command on a grant, the alert rules.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm.attributes import set_committed_value

from gatekeeper import pincodes, policy
from gatekeeper.vocabulary import AlertType, CredentialType, Decision, Reason, Severity
from server.access import doormodes as door_modes
from server.access.decision import Door, Presented, Verdict, decide, issuer_subject
from server.alerts.service import raise_alert
from server.alerts.summaries import N_, summary
from server.community import settings as community_settings
from server.couriers import service as couriers
from server.extensions import db
from server.models import AccessEvent, CourierCode, KeypadLockout, utcnow


def keypad_rules(door: Door) -> pincodes.KeypadRules:
    settings = community_settings.effective(door.community.settings)
    return pincodes.KeypadRules(
        max_failures=settings.keypad_max_failures,
        window=timedelta(minutes=settings.keypad_failure_window_minutes),
        lock=timedelta(minutes=settings.keypad_lock_minutes),
    )


def lockout_at(door: Door, at: datetime) -> KeypadLockout | None:
    """The lock the door's keypad is under at ``at``, if any."""
    return db.session.scalar(
        select(KeypadLockout)
        .where(
            KeypadLockout.access_point_id == door.point.id,
            KeypadLockout.locked_at <= at,
            KeypadLockout.locked_until > at,
        )
        .order_by(KeypadLockout.locked_until.desc())
        .limit(1)
    )


def _wrong(rule: str, detail: str) -> Presented:
    return Presented(
        CredentialType.PIN,
        unknown_reason=Reason.PIN_INVALID,
        unknown_rule=rule,
        details={"detail": detail},
    )


def _code_of(door: Door, pin: str, at: datetime) -> CourierCode | None:
    """The door's code with these digits: a live one first, else the newest."""
    # Under DATA_KEY and each retired key: codes issued before a rotation keep working.
    digests = [pincodes.pin_hash(key, door.point.id, pin) for key in couriers.code_keys()]
    codes = db.session.scalars(
        select(CourierCode)
        .where(CourierCode.access_point_id == door.point.id, CourierCode.code_hash.in_(digests))
        .order_by(CourierCode.created_at.desc())
    ).all()
    live = [c for c in codes if couriers.status_of(c, at) is pincodes.CodeStatus.UNUSED]
    return (live or codes or [None])[0]


def _spend_use(code: CourierCode, at: datetime) -> bool:
    """Count one use if one is left: one conditional UPDATE, atomic on SQLite and PostgreSQL."""
    uses = db.session.scalar(
        update(CourierCode)
        .where(
            CourierCode.id == code.id,
            CourierCode.revoked_at.is_(None),
            CourierCode.uses < CourierCode.max_uses,
        )
        .values(uses=CourierCode.uses + 1, used_at=at)
        .returning(CourierCode.uses)
        .execution_options(synchronize_session=False)
    )
    if uses is None:
        return False
    set_committed_value(code, "uses", uses)
    set_committed_value(code, "used_at", at)
    return True


def _code_decision(code: CourierCode, door: Door, at: datetime) -> policy.AccessDecision:
    issuer = None
    if code.issued_by_person_id is not None:
        issuer = issuer_subject(code.issued_by_person_id)
    view = policy.PassView(
        access_point_ids=frozenset({code.access_point_id}),
        valid_from=code.valid_from,
        valid_until=code.valid_until,
        max_uses=code.max_uses,
        uses=code.uses,
        revoked=code.revoked_at is not None,
        issuer=issuer,
    )
    decision = policy.decide_pass(view, door.view, at)
    if not decision.granted:
        return decision
    # A courier has no role: any lockdown over the door refuses the code, which keeps its use.
    held = door_modes.lockdown_for(door, frozenset(), at)
    if held is not None:
        return held
    if not _spend_use(code, at):
        return policy.AccessDecision(
            Decision.DENY,
            Reason.PASS_USED_UP,
            policy.Rule.PASS_USED_UP,
            "the last use was spent a moment ago",
        )
    return replace(decision, reason=Reason.COURIER_CODE)


def _failures(door: Door, rules: pincodes.KeypadRules, at: datetime) -> int:
    """Wrong codes at the door's keypad that count towards a lock at ``at``."""
    last_unlocked = db.session.scalar(
        select(func.max(KeypadLockout.locked_until)).where(
            KeypadLockout.access_point_id == door.point.id, KeypadLockout.locked_until <= at
        )
    )
    since = pincodes.failures_since(rules, at, last_unlocked)
    return (
        db.session.scalar(
            select(func.count()).where(
                AccessEvent.community_id == door.community.id,
                AccessEvent.access_point_id == door.point.id,
                AccessEvent.credential_type == CredentialType.PIN,
                AccessEvent.decision == Decision.DENY,
                # a locked keypad and a lockdown refuse right codes too: not guesses
                AccessEvent.reason.not_in((Reason.KEYPAD_LOCKED.value, Reason.LOCKDOWN.value)),
                AccessEvent.occurred_at > since,
                AccessEvent.occurred_at <= at,
            )
        )
        or 0
    )


def _lock(door: Door, rules: pincodes.KeypadRules, failures: int, at: datetime) -> KeypadLockout:
    lock = KeypadLockout(
        community_id=door.community.id,
        access_point_id=door.point.id,
        locked_at=at,
        locked_until=at + rules.lock,
        failures=failures,
    )
    alert = raise_alert(
        community_id=door.community.id,
        type=AlertType.KEYPAD_LOCKED,
        severity=Severity.MEDIUM,
        summary=summary(
            N_("%(count)s wrong codes at the keypad of %(place)s: locked for %(minutes)s min"),
            count=failures,
            place=door.point.name,
            minutes=int(rules.lock.total_seconds() // 60),
        ),
        access_point_id=door.point.id,
        device_id=door.device.id,
        evidence={"locked_until": lock.locked_until.isoformat(), "failures": failures},
        dedup_key=f"keypad_locked:{door.point.id}",
    )
    lock.alert_id = alert.id
    db.session.add(lock)
    db.session.flush()
    return lock


def verify(door: Door, pin_text: str, *, at: datetime | None = None) -> Verdict:
    """Decide on the digits typed at ``door`` (a keypad point); the caller commits."""
    at = at or utcnow()
    rules = keypad_rules(door)
    locked = lockout_at(door, at)
    code = None
    if locked is not None:
        presented = Presented(
            CredentialType.PIN,
            unknown_reason=Reason.KEYPAD_LOCKED,
            unknown_rule="keypad.locked",
            details={
                "detail": "too many wrong codes",
                "locked_until": locked.locked_until.isoformat(),
                "lockout_id": locked.id,
            },
        )
    else:
        try:
            pin = pincodes.checked_pin(pin_text)
        except pincodes.PinError:
            pin = None
        code = _code_of(door, pin, at) if pin is not None else None
        if pin is None:
            presented = _wrong("pin.malformed", "not six digits")
        elif code is None:
            presented = _wrong("pin.unknown", "no code of this door has these digits")
        else:
            presented = Presented(
                CredentialType.PIN,
                decision=_code_decision(code, door, at),
                details={
                    "courier_code_id": code.id,
                    "issued_by_user_id": code.issued_by_user_id,
                    "issued_by_person_id": code.issued_by_person_id,
                    "unit_id": code.unit_id,
                },
            )
    verdict = decide(door, presented, at=at)
    if verdict.granted and code is not None:
        couriers.code_used(verdict.event, code)
    elif not verdict.granted and locked is None:
        failures = _failures(door, rules, at)
        if pincodes.locks_now(rules, failures):
            _lock(door, rules, failures, at)
    return verdict
