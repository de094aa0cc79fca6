"""Telling residents: one notification per account, and its deliveries on the chosen channels.

``notify`` (people) and ``notify_accounts`` (accounts) run in the transaction of whatever
happened (a pass used, a tag read, a scheduled job). They store one ``Notification`` per
account that wants this kind on some channel, and one ``pending`` ``NotificationDelivery``
per push subscription and for the SMS gateway where those channels are chosen: the outbox
that the worker's job sends after the commit (``server.worker.notifications``). Nothing is
sent while the request that caused it waits.

The entry points of the kinds: ``pass_used``, ``courier_code_used``, ``intercom_call``,
``tag_left_perimeter`` and ``notify_leases_ending`` (the worker's job).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update

from server.extensions import db
from server.models import (
    Community,
    Lease,
    Notification,
    NotificationDelivery,
    NotificationGateway,
    NotificationPreference,
    Person,
    PushSubscription,
    User,
    UserRole,
    VisitorPass,
    utcnow,
)
from server.notifications.kinds import DEFAULTS, KINDS, Channel, Kind

_LOGGER = logging.getLogger(__name__)

# A tenant is told this long before the lease ends.
LEASE_ENDING_AHEAD = timedelta(days=7)
# The most notifications one page of the list or the API shows.
PAGE = 50

Preferences = dict[Kind, dict[Channel, bool]]


def push_enabled() -> bool:
    """Whether Web Push is configured (``VAPID_PRIVATE_KEY``); off, the channel sends nothing."""
    return current_app.config["SETTINGS"].vapid_private_key is not None


# Preferences ----------------------------------------------------------------------------------


def preferences(user_id: str) -> Preferences:
    """Every kind and channel for this account: its choices over the defaults."""
    chosen = {
        (row.kind, row.channel): row.enabled
        for row in db.session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user_id)
        )
    }
    return {
        kind: {
            channel: chosen.get((kind.value, channel.value), DEFAULTS[channel])
            for channel in Channel
        }
        for kind in Kind
    }


def set_preferences(user_id: str, choices: Mapping[Kind, Mapping[Channel, bool]]) -> Preferences:
    """Store these choices (kinds and channels not named keep theirs); the result."""
    for kind, channels in choices.items():
        for channel, enabled in channels.items():
            row = db.session.get(NotificationPreference, (user_id, kind.value, channel.value))
            if row is None:
                db.session.add(
                    NotificationPreference(
                        user_id=user_id, kind=kind.value, channel=channel.value, enabled=enabled
                    )
                )
            else:
                row.enabled = enabled
    db.session.flush()
    return preferences(user_id)


# Notifying ------------------------------------------------------------------------------------


def _check_params(kind: Kind, params: Mapping[str, Any]) -> dict[str, Any]:
    expected = set(KINDS[kind].params)
    if set(params) != expected:
        raise ValueError(f"{kind.value} takes {sorted(expected)}, not {sorted(params)}")
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in params.items()
    }


def _accounts_of(person_ids: Iterable[str]) -> list[User]:
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(User)
            .where(User.person_id.in_(ids), User.disabled_at.is_(None))
            .order_by(User.created_at, User.id)
        )
    )


def notify(
    person_ids: Iterable[str],
    kind: Kind,
    *,
    community_id: str,
    now: datetime | None = None,
    **params: Any,
) -> list[Notification]:
    """Tell these people (each of their active accounts) ``kind`` with ``params``."""
    return notify_accounts(
        _accounts_of(person_ids), kind, community_id=community_id, now=now, **params
    )


def notify_unit(
    unit_id: str, kind: Kind, *, community_id: str, now: datetime | None = None, **params: Any
) -> list[Notification]:
    """Tell every active resident account of a unit (an intercom call rings them all)."""
    users = db.session.scalars(
        select(User)
        .where(
            User.unit_id == unit_id,
            User.role == UserRole.RESIDENT,
            User.disabled_at.is_(None),
        )
        .order_by(User.created_at, User.id)
    )
    return notify_accounts(list(users), kind, community_id=community_id, now=now, **params)


def notify_accounts(
    users: Iterable[User],
    kind: Kind,
    *,
    community_id: str,
    now: datetime | None = None,
    **params: Any,
) -> list[Notification]:
    """Tell these accounts ``kind``: a notification each that wants it on some channel, and
    the deliveries of its push and SMS channels queued for the worker. ``ValueError`` when
    ``params`` are not the kind's."""
    kind = Kind(kind)
    stored = _check_params(kind, params)
    now = now or utcnow()
    gateway: NotificationGateway | None = None
    gateway_read = False  # read at the first account that wants an SMS, if any does
    made = []
    for user in dict.fromkeys(users):
        wanted = preferences(user.id)[kind]
        subscriptions = (
            list(
                db.session.scalars(
                    select(PushSubscription)
                    .where(PushSubscription.user_id == user.id)
                    .order_by(PushSubscription.created_at, PushSubscription.id)
                )
            )
            if wanted[Channel.PUSH] and push_enabled()
            else []
        )
        sms = False
        if wanted[Channel.SMS] and _phone_of(user) is not None:
            if not gateway_read:
                gateway, gateway_read = _gateway(community_id), True
            sms = gateway is not None
        if not (wanted[Channel.PORTAL] or subscriptions or sms):
            continue
        row = Notification(
            community_id=community_id,
            user_id=user.id,
            kind=kind.value,
            params=stored,
            in_portal=wanted[Channel.PORTAL],
            created_at=now,
            changed_at=now,
        )
        db.session.add(row)
        db.session.flush()
        for subscription in subscriptions:
            _queue(row, Channel.PUSH, subscription.id, now)
        if sms and gateway is not None:
            _queue(row, Channel.SMS, gateway.url, now)
        made.append(row)
    if made:
        _LOGGER.info("%s: %d account(s) notified", kind.value, len(made))
    return made


def _queue(row: Notification, channel: Channel, target: str, now: datetime) -> None:
    db.session.add(
        NotificationDelivery(
            community_id=row.community_id,
            notification_id=row.id,
            channel=channel.value,
            target=target,
            status="pending",
            attempts=1,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _gateway(community_id: str) -> NotificationGateway | None:
    return db.session.scalar(
        select(NotificationGateway).where(
            NotificationGateway.community_id == community_id,
            NotificationGateway.active.is_(True),
        )
    )


def _phone_of(user: User) -> str | None:
    if user.person_id is None:
        return None
    person = db.session.get(Person, user.person_id)
    return person.phone if person is not None and person.phone else None


def phone_of(user: User) -> str | None:
    """The phone an SMS for this account goes to: its person's (None: no SMS)."""
    return _phone_of(user)


# Reading --------------------------------------------------------------------------------------


def listed(user_id: str, limit: int = PAGE) -> list[Notification]:
    """The account's notifications shown in the portal, newest first."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id, Notification.in_portal.is_(True))
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


def owns(user_id: str, notification_id: str) -> bool:
    """Whether this notification is this account's."""
    row = db.session.get(Notification, notification_id)
    return row is not None and row.user_id == user_id


def unread_count(user_id: str) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(
                Notification.user_id == user_id,
                Notification.in_portal.is_(True),
                Notification.read_at.is_(None),
            )
        )
        or 0
    )


def mark_read(user_id: str, notification_id: str | None = None) -> int:
    """Mark one of the account's notifications read (or all, ``notification_id`` None);
    how many were unread. Another account's id is no notification of this one (0)."""
    now = utcnow()
    statement = update(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    result = db.session.execute(
        statement.values(read_at=now, changed_at=now).execution_options(synchronize_session=False)
    )
    db.session.expire_all()
    return result.rowcount or 0  # type: ignore[attr-defined]


# The kinds' entry points ----------------------------------------------------------------------


def pass_used(visitor_pass: VisitorPass, door_name: str, at: datetime) -> list[Notification]:
    """A guest's pass opened a door (a use was counted): its issuer is told."""
    params = {
        "guest": visitor_pass.guest_name,
        "door": door_name,
        "at": at,
        "pass_id": visitor_pass.id,
    }
    if visitor_pass.issued_by_user_id is not None:
        user = db.session.get(User, visitor_pass.issued_by_user_id)
        users = [user] if user is not None and user.disabled_at is None else []
        return notify_accounts(
            users, Kind.PASS_USED, community_id=visitor_pass.community_id, now=at, **params
        )
    if visitor_pass.issued_by_person_id is not None:
        return notify(
            [visitor_pass.issued_by_person_id],
            Kind.PASS_USED,
            community_id=visitor_pass.community_id,
            now=at,
            **params,
        )
    return []


def courier_code_used(
    user_ids: Iterable[str], *, community_id: str, door_name: str, at: datetime
) -> list[Notification]:
    """A courier code opened a door: whoever issued it is told (the couriers' part calls it)."""
    users = db.session.scalars(
        select(User).where(User.id.in_(list(user_ids)), User.disabled_at.is_(None))
    )
    return notify_accounts(
        list(users),
        Kind.COURIER_CODE_USED,
        community_id=community_id,
        now=at,
        door=door_name,
        at=at,
    )


def intercom_call(
    unit_id: str, *, community_id: str, door_name: str, at: datetime
) -> list[Notification]:
    """A visitor calls a unit from a door: every resident account of the unit is told (the
    intercom's part calls it, besides ringing the open portals)."""
    return notify_unit(
        unit_id, Kind.INTERCOM_CALL, community_id=community_id, now=at, door=door_name, at=at
    )


def tag_left_perimeter(person: Person, place: str, at: datetime) -> list[Notification]:
    """An elder's or child's tag left the perimeter without a guardian: the guardians are told."""
    return notify(
        [guardian.id for guardian in person.guardians],
        Kind.TAG_LEFT_PERIMETER,
        community_id=person.community_id,
        now=at,
        name=person.name,
        place=place,
        at=at,
    )


def notify_leases_ending(now: datetime | None = None) -> int:
    """Tell each tenant whose lease ends within ``LEASE_ENDING_AHEAD`` (the worker's job):
    once per lease (``ending_notified_at``), and not when another lease of theirs carries on
    after it (a renewal). How many leases were told."""
    now = now or utcnow()
    due = list(
        db.session.scalars(
            select(Lease)
            .where(
                Lease.ends_at > now,
                Lease.ends_at <= now + LEASE_ENDING_AHEAD,
                Lease.closed_at.is_(None),
                Lease.ending_notified_at.is_(None),
            )
            .order_by(Lease.ends_at, Lease.id)
        )
    )
    for lease in due:
        lease.ending_notified_at = now
        renewed = db.session.scalar(
            select(func.count()).where(
                Lease.person_id == lease.person_id,
                Lease.id != lease.id,
                Lease.starts_at <= lease.ends_at,
                Lease.ends_at > lease.ends_at,
            )
        )
        if renewed:
            continue
        community = db.session.get(Community, lease.community_id)
        ends_on = lease.ends_at.astimezone(ZoneInfo(community.timezone)).date().isoformat()
        notify(
            [lease.person_id],
            Kind.LEASE_ENDING,
            community_id=lease.community_id,
            now=now,
            date=ends_on,
        )
    return len(due)
