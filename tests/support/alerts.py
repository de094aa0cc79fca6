"""Alerts for the alert tests: raised as a rule would raise them, and read back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, Severity
from server.alerts import targets
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


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """Names resolve to ``answers`` (changeable: rebinding); anything else does not resolve."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise targets.UnresolvedHost(f"The host name {host} does not resolve.")
        return list(answers[host])

    monkeypatch.setattr(targets, "resolve", resolve)


def allow_webhook_hosts(app: Flask, monkeypatch: pytest.MonkeyPatch, hosts: Iterable[str]) -> None:
    """``WEBHOOK_ALLOWED_HOSTS`` for this test only."""
    settings = dataclasses.replace(app.config["SETTINGS"], webhook_allowed_hosts=frozenset(hosts))
    monkeypatch.setitem(app.config, "SETTINGS", settings)
