"""Alerts for officers: the list, one alert with its history, the workflow, the live stream,
the delivery log, and the webhooks a community's alerts are POSTed to.

Officers see and act on the alerts of the communities they cover; the community's staff
read them (acting answers 403); residents get 404 for the collection, the stream and any
alert: for them alerts do not exist. Webhooks are the property office's (staff and admins;
officers get 403/404).
``docs/alerts.md`` describes channels, payload, signatures and the stream.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask import Response, current_app
from marshmallow import fields, validate

from gatekeeper.vocabulary import AlertStatus, AlertType, Severity
from server.access import bundle as evidence_bundle
from server.alerts import service as alerts
from server.alerts import stream as alert_stream
from server.alerts.channels import alert_payload, evidence_of, snapshots_kept
from server.api import authenticated_blueprint, scope
from server.api.pagination import Cursor, keyset_paginated
from server.core import audit, live
from server.extensions import db
from server.models import Alert
from server.passes import keys as passkeys

blp = authenticated_blueprint(
    "alerts", "Officers' alerts: list, workflow, live stream, delivery log, webhooks"
)


# Shapes ---------------------------------------------------------------------------------------


class AlertQuerySchema(ma.Schema):
    status = fields.Str(validate=validate.OneOf([s.value for s in AlertStatus]))
    type = fields.Str(validate=validate.OneOf([t.value for t in AlertType]))
    severity = fields.Str(validate=validate.OneOf([s.value for s in Severity]))
    community_id = fields.Str()
    after = Cursor(int, datetime, str)


class EvidenceSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    event_ids = fields.List(fields.Str())
    snapshots = fields.List(
        fields.Str(), metadata={"description": "API paths of the kept pictures"}
    )


class AlertSchema(ma.Schema):
    """docs/protocol.md section 5's payload, with ``id`` (= ``alert_id``) and a few more fields."""

    id = fields.Str()
    alert_id = fields.Str()
    type = fields.Str()
    severity = fields.Str()
    status = fields.Str()
    community_id = fields.Str()
    access_point = fields.Str(allow_none=True, metadata={"description": "its name"})
    access_point_id = fields.Str(allow_none=True)
    device_id = fields.Str(allow_none=True)
    ts = fields.Str(metadata={"description": "when it was raised (ISO 8601)"})
    updated_at = fields.Str(metadata={"description": "its last change (ISO 8601)"})
    escalated_at = fields.AwareDateTime(allow_none=True)
    summary = fields.Str()
    evidence = fields.Nested(EvidenceSchema)
    dispatch = fields.Nested(
        "AlertDispatchSchema",
        allow_none=True,
        metadata={"description": "the officer it was dispatched to (docs/alerts.md, Dispatch)"},
    )


class AlertDispatchSchema(ma.Schema):
    assignee_id = fields.Str()
    assignee = fields.Str(allow_none=True, metadata={"description": "the officer's username"})
    assigned_at = fields.Str(metadata={"description": "when it was dispatched (ISO 8601)"})
    assigned_by = fields.Str(allow_none=True)
    acknowledged_at = fields.Str(allow_none=True)
    escalated_at = fields.Str(
        allow_none=True, metadata={"description": "escalated to the station (ISO 8601)"}
    )


class AlertStepSchema(ma.Schema):
    action = fields.Str(
        metadata={
            "description": "raised, acknowledged, resolved, escalated, dispatched, "
            "dispatch_accepted, dispatch_escalated"
        }
    )
    status = fields.Str()
    at = fields.AwareDateTime()
    by_user_id = fields.Str(allow_none=True)
    by = fields.Str(allow_none=True, metadata={"description": "the username"})
    note = fields.Str(allow_none=True)


class AlertDetailSchema(AlertSchema):
    history = fields.List(fields.Nested(AlertStepSchema))


class AlertNoteSchema(ma.Schema):
    note = fields.Str(validate=validate.Length(max=500), allow_none=True)


class AlertDeliverySchema(ma.Schema):
    id = fields.Str()
    channel = fields.Str()
    target = fields.Str(metadata={"description": "the topic or URL"})
    reason = fields.Str(
        metadata={"description": "raised, updated, escalated, acknowledged, resolved"}
    )
    status = fields.Str(
        metadata={
            "description": "pending (due at next_attempt_at), queued (MQTT: the broker has "
            "not acknowledged the publish yet), sent, failed"
        }
    )
    attempts = fields.Int(metadata={"description": "which attempt this row is (from 1)"})
    next_attempt_at = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "pending: when due; failed: when retried (empty: given up)"},
    )
    last_error = fields.Str(allow_none=True)
    response_status = fields.Int(allow_none=True)
    created_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "when this attempt was made (failed ones too)"}
    )


class WebhookInputSchema(ma.Schema):
    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=500),
    )


class WebhookSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    url = fields.Str()
    active = fields.Bool()
    created_at = fields.AwareDateTime()


class WebhookSecretSchema(WebhookSchema):
    secret = fields.Str(
        metadata={"description": "HMAC-SHA256 key of X-Signature; shown only in this answer"}
    )


def alert_answer(
    alert: Alert, *, history: bool = False, kept: Collection[str] | None = None
) -> dict[str, Any]:
    answer = alert_payload(alert, "", kept)
    answer.pop("reason")
    answer["id"] = alert.id
    answer["escalated_at"] = alert.escalated_at
    if history:
        answer["history"] = alerts.history_of(alert)
    return answer


# Alerts ---------------------------------------------------------------------------------------


@blp.get("/alerts")
@blp.arguments(AlertQuerySchema, location="query")
@blp.response(200, AlertSchema(many=True))
@blp.paginate()
def list_alerts(query: dict[str, Any], pagination_parameters: Any) -> Any:
    """Alerts of the communities you cover (staff: run): unresolved ones (open, acknowledged)
    first, newest first, then resolved ones, newest first.

    Filters: ``status``, ``type``, ``severity``, ``community_id``. Page with ``after`` (the
    ``next_after`` of the previous page's ``X-Pagination``): alerts raised meanwhile do not
    shift the next pages; an alert resolved meanwhile moves to the resolved half. 422 for a
    cursor this list did not give.
    """
    caller, after = scope(), query.pop("after", None)
    rows = keyset_paginated(
        lambda limit: alerts.alerts_after(caller, query, None, limit),
        lambda key, limit: alerts.alerts_after(caller, query, key, limit),
        alerts.alert_key,
        lambda: alerts.alerts_query(caller, query),
        after,
        pagination_parameters,
    )
    alerts.load_access_points(rows)
    kept = snapshots_kept(rows)
    return [alert_answer(row, kept=kept) for row in rows]


@blp.get("/alerts/stream")
@blp.response(200, content_type="text/event-stream")
def stream_alerts() -> Response:
    """Server-Sent Events: every change of an alert you may see, as it happens.

    Each event is ``event: alert`` with the alert as JSON in ``data`` (with ``reason``:
    raised, updated, escalated, acknowledged, resolved) and an ``id``; send it back as
    ``Last-Event-ID`` (``EventSource`` does) to get what changed meanwhile. A comment
    arrives every 15 s. Session cookies work, so a page's ``EventSource`` needs no token.
    503 with ``Retry-After`` when this server process has no stream to spare.
    """
    caller = scope()
    alerts.readable(caller)
    return live.respond(
        alert_stream.broadcaster(),
        alert_stream.subscriber(
            None if caller.is_admin else caller.community_ids, caller.hidden_alert_types
        ),
        current_app.config["SETTINGS"].alert_streams_per_process,
        lambda since: alert_stream.resume_changes(caller.visible(Alert), since),
        heartbeat_s=alert_stream.HEARTBEAT_S,
        max_s=alert_stream.STREAM_MAX_S,
    )


@blp.get("/alerts/<alert_id>")
@blp.response(200, AlertDetailSchema)
def get_alert(alert_id: str) -> Any:
    """One alert with its evidence and history (who did what, when, with which note)."""
    return alert_answer(scope().get(Alert, alert_id), history=True)


@blp.post("/alerts/<alert_id>/acknowledge")
@blp.arguments(AlertNoteSchema)
@blp.response(200, AlertDetailSchema)
def acknowledge_alert(data: dict[str, Any], alert_id: str) -> Any:
    """Acknowledge an open alert (stops escalation); 409 unless it is open."""
    return _acknowledge(alert_id, data.get("note"))


@blp.post("/alerts/<alert_id>/ack")
@blp.arguments(AlertNoteSchema)
@blp.response(200, AlertDetailSchema)
def ack_alert(data: dict[str, Any], alert_id: str) -> Any:
    """The same as ``/acknowledge`` (the spelling of the shared API table)."""
    return _acknowledge(alert_id, data.get("note"))


def _acknowledge(alert_id: str, note: str | None) -> dict[str, Any]:
    row = alerts.acknowledge(scope(), alert_id, note)
    db.session.commit()
    return alert_answer(row, history=True)


@blp.post("/alerts/<alert_id>/resolve")
@blp.arguments(AlertNoteSchema)
@blp.response(200, AlertDetailSchema)
def resolve_alert(data: dict[str, Any], alert_id: str) -> Any:
    """Resolve an open or acknowledged alert; 409 when it is resolved already."""
    row = alerts.resolve(scope(), alert_id, data.get("note"))
    db.session.commit()
    return alert_answer(row, history=True)


@blp.get("/alerts/<alert_id>/deliveries")
@blp.response(200, AlertDeliverySchema(many=True))
def alert_deliveries(alert_id: str) -> Any:
    """The delivery log: one row per attempt on each channel, oldest first."""
    return alerts.deliveries_of(scope(), alert_id)


# Webhooks -------------------------------------------------------------------------------------


@blp.get("/communities/<cid>/webhooks")
@blp.response(200, WebhookSchema(many=True))
def list_webhooks(cid: str) -> Any:
    """Where this community's alerts are POSTed (staff and admins)."""
    return alerts.webhooks_of(scope(), cid)


@blp.post("/communities/<cid>/webhooks")
@blp.arguments(WebhookInputSchema)
@blp.response(201, WebhookSecretSchema)
def create_webhook(data: dict[str, Any], cid: str) -> Any:
    """Add a webhook; the answer holds its signing secret, shown this once."""
    row, secret = alerts.create_webhook(scope(), cid, data["url"])
    db.session.commit()
    return {
        **{name: getattr(row, name) for name in ("id", "community_id", "url", "active")},
        "created_at": row.created_at,
        "secret": secret,
    }


@blp.delete("/webhooks/<webhook_id>")
@blp.response(204)
def delete_webhook(webhook_id: str) -> None:
    """Stop sending to it (the delivery log keeps its URL)."""
    alerts.delete_webhook(scope(), webhook_id)
    db.session.commit()


# Evidence bundles -----------------------------------------------------------------------------


class BundleKeySchema(ma.Schema):
    key_id = fields.Int()
    algorithm = fields.Str(metadata={"description": "Ed25519"})
    public_key = fields.Str(metadata={"description": "the raw 32-byte public key, base64"})
    signs_until = fields.AwareDateTime()
    verifies_until = fields.AwareDateTime()


@blp.get("/alerts/<alert_id>/bundle")
@blp.response(200, content_type="application/zip")
def alert_bundle(alert_id: str) -> Response:
    """The alert's evidence as a signed ZIP (events, crops, history, site, manifest,
    signature); officers and staff of its community. Audited as a read of personal data.
    docs/alerts.md says how a receiver verifies it."""
    caller = scope()
    alerts.readable(caller)
    alert = caller.get(Alert, alert_id)
    data = evidence_bundle.build(alert)
    audit.record(
        caller.user,
        "alert.bundle",
        community_id=alert.community_id,
        target=alert,
        details={"read": "personal_data", "event_ids": evidence_of(alert)["event_ids"]},
    )
    db.session.commit()
    return Response(
        data,
        mimetype="application/zip",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="evidence-{alert.id}.zip"',
        },
    )


@blp.get("/alerts/bundle-keys")
@blp.response(200, BundleKeySchema(many=True))
def bundle_keys() -> Any:
    """The public keys that sign evidence bundles (and QR passes), by key id: what a
    receiver records to verify a bundle later."""
    alerts.readable(scope())
    return [
        {
            "key_id": key.key_id,
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(key.public_key).decode(),
            "signs_until": key.signs_until,
            "verifies_until": key.verifies_until,
        }
        for key in passkeys.public_keys()
    ]
