"""Alerts for the alert tests: raised as a rule would raise them, and read back."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, Severity
from server.alerts.service import raise_alert
from server.extensions import db
from server.models import Alert
from tests.support.api import in_app


def raise_in(
    app: Flask,
    community_id: str,
    *,
    type: AlertType = AlertType.DOOR_FORCED,
    severity: Severity = Severity.HIGH,
    summary: str = "Door forced open: A door",
    **values: Any,
) -> str:
    """Raise (and commit: the outbox publishes) an alert in ``community_id``; its id."""
    with in_app(app):
        alert = raise_alert(
            community_id=community_id, type=type, severity=severity, summary=summary, **values
        )
        db.session.commit()
        return alert.id


def alerts(app: Flask, type_: AlertType | None = None) -> list[Alert]:
    """The alerts stored (of ``type_`` when given), oldest first, detached from the session."""
    with in_app(app):
        query = select(Alert).order_by(Alert.created_at)
        if type_ is not None:
            query = query.where(Alert.type == type_)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows
