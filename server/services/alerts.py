"""Raising alerts: stored with their history, de-duplicated by a key.

Delivery to officers (console, MQTT, webhooks) builds on this in the officer issue.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gatekeeper.vocabulary import AlertStatus, AlertType, Severity
from server.extensions import db
from server.models import Alert, AlertHistory, utcnow


def raise_alert(
    *,
    community_id: str,
    type: AlertType,
    severity: Severity,
    summary: str,
    access_point_id: str | None = None,
    device_id: str | None = None,
    evidence: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> Alert:
    """A new open alert, or the open one with the same ``dedup_key`` brought up to date."""
    if dedup_key is not None:
        existing = db.session.scalar(
            select(Alert).where(
                Alert.community_id == community_id,
                Alert.dedup_key == dedup_key,
                Alert.status != AlertStatus.RESOLVED,
            )
        )
        if existing is not None:
            existing.summary = summary
            existing.evidence = _merge_evidence(existing.evidence, evidence or {})
            existing.updated_at = utcnow()
            return existing
    alert = Alert(
        community_id=community_id,
        type=type,
        severity=severity,
        summary=summary,
        access_point_id=access_point_id,
        device_id=device_id,
        evidence=evidence or {},
        dedup_key=dedup_key,
        status=AlertStatus.OPEN,
    )
    db.session.add(alert)
    db.session.flush()
    db.session.add(
        AlertHistory(
            community_id=community_id, alert_id=alert.id, action="raised", status=AlertStatus.OPEN
        )
    )
    return alert


def _merge_evidence(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Lists grow (without repeats), other values are replaced."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + [v for v in value if v not in merged[key]]
        else:
            merged[key] = value
    return merged
