"""Telling residents: the caller's own notifications, their choices and Web Push
subscriptions; a community's SMS gateway (staff and admins).

Every account reads and marks only its own notifications and choices: another account's
notification is no notification (404). ``docs/notifications.md`` describes the kinds, the
channels and what each carries.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate
from sqlalchemy import delete, select

from server.alerts import channels as alert_channels
from server.alerts.targets import TargetRefused
from server.api import authenticated_blueprint, scope
from server.core import audit, crypto
from server.core.errors import Forbidden, Invalid, NotFound
from server.extensions import db
from server.models import Community, NotificationGateway, PushSubscription, UserRole
from server.notifications import service as notifications
from server.notifications.kinds import Channel, Kind
from server.notifications.push import public_key

blp = authenticated_blueprint(
    "notifications",
    "Residents' notifications: the list, marking read, choices, Web Push; SMS gateways",
)

_KINDS = [kind.value for kind in Kind]


class NotificationSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    kind = fields.Str(validate=validate.OneOf(_KINDS))
    params = fields.Dict(keys=fields.Str(), values=fields.Raw())
    created_at = fields.AwareDateTime()
    read_at = fields.AwareDateTime(allow_none=True)


class NotificationListSchema(ma.Schema):
    unread = fields.Int()
    notifications = fields.List(fields.Nested(NotificationSchema))


class MarkedSchema(ma.Schema):
    marked = fields.Int(metadata={"description": "how many were unread"})


class ChannelsSchema(ma.Schema):
    """Whether a kind reaches the account on each channel."""

    portal = fields.Bool()
    push = fields.Bool()
    sms = fields.Bool()


class KindsSchema(ma.Schema):
    pass_used = fields.Nested(ChannelsSchema)
    courier_code_used = fields.Nested(ChannelsSchema)
    intercom_call = fields.Nested(ChannelsSchema)
    tag_left_perimeter = fields.Nested(ChannelsSchema)
    lease_ending = fields.Nested(ChannelsSchema)


class PreferencesSchema(ma.Schema):
    """``{kind: {channel: on}}``; a PUT may name only what it changes."""

    preferences = fields.Nested(KindsSchema, required=True)


class PushKeysSchema(ma.Schema):
    p256dh = fields.Str(required=True, validate=validate.Length(min=40, max=200))
    auth = fields.Str(required=True, validate=validate.Length(min=16, max=100))


class PushSubscriptionInputSchema(ma.Schema):
    """A browser's ``PushSubscription.toJSON()``."""

    class Meta:
        unknown = ma.EXCLUDE  # expirationTime

    endpoint = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=1000),
    )
    keys = fields.Nested(PushKeysSchema, required=True)


class PushSubscriptionSchema(ma.Schema):
    id = fields.Str()
    endpoint = fields.Str()
    created_at = fields.AwareDateTime()


class PushKeySchema(ma.Schema):
    public_key = fields.Str(
        allow_none=True,
        metadata={"description": "the VAPID applicationServerKey (base64url); null: push is off"},
    )


class GatewayInputSchema(ma.Schema):
    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=500),
    )


class GatewaySchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    url = fields.Str()
    active = fields.Bool()
    created_at = fields.AwareDateTime()


class GatewaySecretSchema(GatewaySchema):
    secret = fields.Str(
        metadata={"description": "HMAC-SHA256 key of X-Signature; shown only in this answer"}
    )


# The caller's notifications -------------------------------------------------------------------


@blp.get("/notifications")
@blp.response(200, NotificationListSchema)
def list_notifications() -> Any:
    """The caller's notifications shown in the portal, newest first (50), and the unread count."""
    user = scope().user
    return {
        "unread": notifications.unread_count(user.id),
        "notifications": notifications.listed(user.id),
    }


@blp.post("/notifications/read")
@blp.response(200, MarkedSchema)
def mark_all_read() -> Any:
    """Mark every notification of the caller read."""
    marked = notifications.mark_read(scope().user.id)
    db.session.commit()
    return {"marked": marked}


@blp.post("/notifications/<notification_id>/read")
@blp.response(200, MarkedSchema)
def mark_read(notification_id: str) -> Any:
    """Mark one of the caller's notifications read (0 when it already was)."""
    user = scope().user
    if not notifications.owns(user.id, notification_id):
        raise NotFound(_l("No such notification."))
    marked = notifications.mark_read(user.id, notification_id)
    db.session.commit()
    return {"marked": marked}


@blp.get("/notifications/preferences")
@blp.response(200, PreferencesSchema)
def get_preferences() -> Any:
    """Which kinds reach the caller on which channel (their choices over the defaults)."""
    return {"preferences": _shown(notifications.preferences(scope().user.id))}


@blp.put("/notifications/preferences")
@blp.arguments(PreferencesSchema)
@blp.response(200, PreferencesSchema)
def put_preferences(data: dict[str, Any]) -> Any:
    """Change the caller's choices; kinds and channels not named keep theirs."""
    choices = {
        Kind(kind): {Channel(channel): on for channel, on in channels.items()}
        for kind, channels in data["preferences"].items()
    }
    chosen = notifications.set_preferences(scope().user.id, choices)
    db.session.commit()
    return {"preferences": _shown(chosen)}


def _shown(preferences: notifications.Preferences) -> dict[str, dict[str, bool]]:
    return {
        kind.value: {channel.value: on for channel, on in channels.items()}
        for kind, channels in preferences.items()
    }


# Web Push -------------------------------------------------------------------------------------


@blp.get("/notifications/push-key")
@blp.response(200, PushKeySchema)
def push_key() -> Any:
    """The key a browser subscribes with (``applicationServerKey``); null when push is off."""
    return {"public_key": public_key()}


@blp.post("/notifications/push-subscriptions")
@blp.arguments(PushSubscriptionInputSchema)
@blp.response(201, PushSubscriptionSchema)
def subscribe(data: dict[str, Any]) -> Any:
    """Receive pushes in this browser (its subscription, made with ``push-key``). An endpoint
    already subscribed moves to the caller. 422 while Web Push is not set up on the server,
    or when the push service's host does not resolve to public addresses only (as webhooks)."""
    if public_key() is None:
        raise Invalid(_l("Phone notifications are not set up on this server."))
    endpoint = data["endpoint"].strip()
    try:
        alert_channels.check_webhook_url(endpoint)
    except TargetRefused as refused:
        raise Invalid(
            _l("The push service is refused: %(why)s", why=str(refused)),
            errors={"endpoint": [str(refused)]},
        ) from refused
    user = scope().user
    db.session.execute(delete(PushSubscription).where(PushSubscription.endpoint == endpoint))
    row = PushSubscription(
        user_id=user.id,
        endpoint=endpoint,
        p256dh=data["keys"]["p256dh"],
        auth=data["keys"]["auth"],
    )
    db.session.add(row)
    db.session.commit()
    return row


@blp.delete("/notifications/push-subscriptions/<subscription_id>")
@blp.response(204)
def unsubscribe(subscription_id: str) -> None:
    """Stop pushes to that browser (one of the caller's own subscriptions)."""
    row = db.session.get(PushSubscription, subscription_id)
    if row is None or row.user_id != scope().user.id:
        raise NotFound(_l("No such subscription."))
    db.session.delete(row)
    db.session.commit()


# SMS gateways ---------------------------------------------------------------------------------


def _office(cid: str) -> Community:
    """The community, for its staff and admins (others: 404 if they cannot see it, else 403)."""
    current = scope()
    community = current.get(Community, cid)
    if current.role not in (UserRole.ADMIN, UserRole.STAFF):
        raise Forbidden(_l("Only the property office manages the SMS gateway."))
    return community


@blp.get("/communities/<cid>/notification-gateway")
@blp.response(200, GatewaySchema)
def get_gateway(cid: str) -> Any:
    """Where this community's SMS notifications are POSTed (404: none)."""
    community = _office(cid)
    row = db.session.scalar(
        select(NotificationGateway).where(NotificationGateway.community_id == community.id)
    )
    if row is None:
        raise NotFound(_l("This community has no SMS gateway."))
    return row


@blp.put("/communities/<cid>/notification-gateway")
@blp.arguments(GatewayInputSchema)
@blp.response(200, GatewaySecretSchema)
def put_gateway(data: dict[str, Any], cid: str) -> Any:
    """Set the SMS (or WeChat) gateway; the answer holds a new signing secret, shown this once.
    The URL's host must resolve to public addresses only (422), as a webhook's."""
    community = _office(cid)
    url = data["url"].strip()
    try:
        alert_channels.check_webhook_url(url)
    except TargetRefused as refused:
        raise Invalid(
            _l("The gateway URL is refused: %(why)s", why=str(refused)),
            errors={"url": [str(refused)]},
        ) from refused
    secret = alert_channels.new_webhook_secret()
    row = db.session.scalar(
        select(NotificationGateway).where(NotificationGateway.community_id == community.id)
    )
    if row is None:
        row = NotificationGateway(community_id=community.id, url=url, secret_encrypted=b"")
        db.session.add(row)
    row.url, row.active = url, True
    row.secret_encrypted = crypto.encrypt_text(secret)
    db.session.flush()
    audit.record(
        scope().user,
        "notification_gateway.set",
        community_id=community.id,
        target=row,
        details={"url": url},
    )
    db.session.commit()
    return {
        **{name: getattr(row, name) for name in ("id", "community_id", "url", "active")},
        "created_at": row.created_at,
        "secret": secret,
    }


@blp.delete("/communities/<cid>/notification-gateway")
@blp.response(204)
def delete_gateway(cid: str) -> None:
    """No more SMS notifications in this community (pending ones fail as ``target gone``)."""
    community = _office(cid)
    row = db.session.scalar(
        select(NotificationGateway).where(NotificationGateway.community_id == community.id)
    )
    if row is None:
        raise NotFound(_l("This community has no SMS gateway."))
    audit.record(
        scope().user,
        "notification_gateway.delete",
        community_id=community.id,
        target=row,
        details={"url": row.url},
    )
    db.session.delete(row)
    db.session.commit()
