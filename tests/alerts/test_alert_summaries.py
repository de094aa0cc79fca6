"""Alert summaries: stored in English for the API and the channels, shown in the reader's
language on the pages (``server.alerts.summaries``)."""

from __future__ import annotations

from flask import Flask

from gatekeeper.vocabulary import AlertType, Severity, Zone
from server.alerts import summaries
from server.alerts.channels import alert_payload
from server.alerts.service import raise_alert
from server.extensions import db
from server.models import Alert
from tests import factories

ZH = {"Accept-Language": "zh-CN"}
FORCED = summaries.N_("Door forced open: %(device)s")


def _raise(summary: str | summaries.Summary, **values) -> Alert:
    return raise_alert(
        community_id=values.pop("community_id"),
        type=AlertType.DOOR_FORCED,
        severity=Severity.HIGH,
        summary=summary,
        **values,
    )


def test_stored_in_english_shown_in_the_readers_language(app: Flask, ctx) -> None:
    w = factories.world()
    # Raised during a Chinese request (a door's verification, say): still stored in English.
    with app.test_request_context("/", headers=ZH):
        alert = _raise(summaries.device_event(AlertType.DOOR_FORCED, "Gate 1"), community_id=w.a.id)
        assert alert.summary == "Door forced open: Gate 1"
        assert alert.evidence["summary_text"] == {"text": FORCED, "params": {"device": "Gate 1"}}
    db.session.commit()
    payload = alert_payload(alert, "raised")
    assert payload["summary"] == "Door forced open: Gate 1"
    assert "summary_text" not in payload["evidence"]  # the channels send the English only
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert summaries.display_summary(alert) == "Door forced open: Gate 1"


def test_old_and_plain_summaries_show_as_stored(app: Flask, ctx) -> None:
    w = factories.world()
    plain = _raise("Something happened at the gate", community_id=w.a.id)
    broken = _raise("As stored", community_id=w.a.id)
    broken.evidence = {"summary_text": {"text": "Gate %(missing)s", "params": {}}}
    with app.test_request_context("/", headers=ZH):
        assert summaries.display_summary(plain) == "Something happened at the gate"
        assert summaries.display_summary(broken) == "As stored"


def test_an_update_replaces_the_text(app: Flask, ctx) -> None:
    w = factories.world()
    first = _raise(
        summaries.device_event(AlertType.DOOR_FORCED, "Gate 1"), community_id=w.a.id, dedup_key="k"
    )
    again = _raise(
        summaries.device_event(AlertType.DOOR_FORCED, "Gate 2"), community_id=w.a.id, dedup_key="k"
    )
    assert again is first and first.evidence["summary_text"]["params"] == {"device": "Gate 2"}
    _raise("Plain now", community_id=w.a.id, dedup_key="k")
    assert first.summary == "Plain now" and "summary_text" not in first.evidence


def test_domain_values_and_phrases_are_shown_in_words(app: Flask) -> None:
    text = summaries.Summary(
        "%(zone)s: %(place)s",
        {"zone": Zone.PATROL_CHECKPOINT, "place": summaries.Phrase("a deleted access point")},
    )
    assert text.as_json() == {
        "text": "%(zone)s: %(place)s",
        "params": {"zone": "patrol_checkpoint", "place": "a deleted access point"},
        "words": ["zone"],
        "phrases": ["place"],
    }
    assert text.english() == "patrol checkpoint: a deleted access point"
    with app.test_request_context("/", headers=ZH):
        assert text.english() == "patrol checkpoint: a deleted access point"
        shown = summaries.display_summary(
            Alert(summary="x", evidence={"summary_text": text.as_json()})
        )
    assert shown.startswith("巡更点: ")
