"""The notification API and the portal's pages: each account reads, marks and chooses only its
own; the SMS gateway is the property office's, audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.api.notifications import KindsSchema
from server.extensions import db
from server.models import AuditEntry, Notification, User
from server.notifications import service as notifications
from server.notifications.kinds import Channel, Kind
from tests.factories import Api
from tests.support.pages import login
from tests.support.passes import NOW, pass_site


@pytest.fixture
def site(app):
    return pass_site(app)


def put(client, username: str, path: str, body: Any) -> Any:
    api = Api(client, username)
    return client.put("/api/v1" + path, headers=api.headers, json=body)


def tell(app, site, person: str, times: int = 1) -> list[str]:
    with app.app_context():
        made = []
        for _ in range(times):
            made += notifications.notify(
                [person], Kind.COURIER_CODE_USED, community_id=site.a, door="A door", at=NOW
            )
        db.session.commit()
        return [row.id for row in made]


def test_the_schema_names_every_kind() -> None:
    assert set(KindsSchema().fields) == {kind.value for kind in Kind}


def test_an_account_lists_and_marks_only_its_own(app, client, site) -> None:
    mine = tell(app, site, site.resident_person, 2)
    theirs = tell(app, site, site.tenant_person)
    resident = Api(client, "resident_a")
    listed = resident.get("/notifications").json
    assert listed["unread"] == 2
    assert {row["id"] for row in listed["notifications"]} == set(mine)
    assert listed["notifications"][0]["params"] == {"door": "A door", "at": NOW.isoformat()}
    # Another account's notification is no notification.
    assert resident.post(f"/notifications/{theirs[0]}/read").status_code == 404
    assert resident.post(f"/notifications/{mine[0]}/read").json == {"marked": 1}
    assert resident.post(f"/notifications/{mine[0]}/read").json == {"marked": 0}
    assert resident.post("/notifications/read").json == {"marked": 1}
    assert resident.get("/notifications").json["unread"] == 0
    assert Api(client, "tenant_a").get("/notifications").json["unread"] == 1


def test_preferences_are_read_and_changed_in_part(app, client, site) -> None:
    resident = Api(client, "resident_a")
    shown = resident.get("/notifications/preferences").json["preferences"]
    assert shown["pass_used"] == {"portal": True, "push": True, "sms": False}
    changed = put(
        client,
        "resident_a",
        "/notifications/preferences",
        {"preferences": {"intercom_call": {"sms": True}}},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["preferences"]["intercom_call"] == {
        "portal": True,
        "push": True,
        "sms": True,
    }
    # Only the caller's own choices changed.
    other = Api(client, "tenant_a").get("/notifications/preferences").json["preferences"]
    assert other["intercom_call"]["sms"] is False
    bad = put(
        client, "resident_a", "/notifications/preferences", {"preferences": {"nope": {"sms": True}}}
    )
    assert bad.status_code == 422 and bad.content_type == "application/problem+json"


def test_push_is_off_without_a_key(client, site) -> None:
    resident = Api(client, "resident_a")
    assert resident.get("/notifications/push-key").json == {"public_key": None}
    answer = resident.post(
        "/notifications/push-subscriptions",
        json={
            "endpoint": "https://push.example.net/x",
            "keys": {"p256dh": "k" * 65, "auth": "a" * 22},
        },
    )
    assert answer.status_code == 422


def test_the_gateway_is_the_property_offices(app, client, site, monkeypatch) -> None:
    from tests.support.alerts import fake_dns

    fake_dns(monkeypatch, {"sms.example.cn": ["93.184.216.34"]})
    url = "https://sms.example.cn/send"
    for username, status in (("resident_a", 403), ("officer_a", 403), ("staff_b", 404)):
        answer = put(client, username, f"/communities/{site.a}/notification-gateway", {"url": url})
        assert answer.status_code == status, (username, answer.json)
    answer = put(client, "staff_a", f"/communities/{site.a}/notification-gateway", {"url": url})
    assert answer.status_code == 200, answer.json
    assert answer.json["secret"].startswith("whsec_") and answer.json["url"] == url
    staff = Api(client, "staff_a")
    assert "secret" not in staff.get(f"/communities/{site.a}/notification-gateway").json
    assert staff.delete(f"/communities/{site.a}/notification-gateway").status_code == 204
    assert staff.get(f"/communities/{site.a}/notification-gateway").status_code == 404
    with app.app_context():
        actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert [a for a in actions if a.startswith("notification_gateway")] == [
        "notification_gateway.set",
        "notification_gateway.delete",
    ]


# The portal's pages ---------------------------------------------------------------------------


def test_the_portal_lists_counts_and_marks_read(app, client, site) -> None:
    tell(app, site, site.resident_person, 2)
    login(client, "resident_a")
    page = client.get("/my/notifications")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert text.count("Your courier code was used at A door (11-21 16:30).") == 2
    assert 'data-unread="2"' in text
    assert 'data-unread="2"' in client.get("/my/passes").get_data(as_text=True)  # every page
    token = _csrf(text)
    client.post("/my/notifications/read", data={"csrf_token": token})
    assert 'data-unread="0"' in client.get("/my/notifications").get_data(as_text=True)


def test_the_portal_form_saves_choices(app, client, site) -> None:
    login(client, "resident_a")
    page = client.get("/my/notifications/settings").get_data(as_text=True)
    assert 'name="pass_used.portal"' in page and "push-subscribe" not in page  # no VAPID key
    form = {"csrf_token": _csrf(page), "pass_used.portal": "on", "pass_used.sms": "on"}
    assert client.post("/my/notifications/settings", data=form).status_code == 302
    with app.app_context():
        user = db.session.scalar(select(User.id).where(User.username == "resident_a"))
        chosen = notifications.preferences(user)
    assert chosen[Kind.PASS_USED] == {Channel.PORTAL: True, Channel.PUSH: False, Channel.SMS: True}
    assert chosen[Kind.LEASE_ENDING][Channel.PORTAL] is False  # every box of the form is a choice


def test_other_roles_find_no_portal_notifications(client, site) -> None:
    login(client, "staff_a")
    assert client.get("/my/notifications").status_code == 404


def _csrf(page: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_nothing_is_stored_for_nobody(app, site) -> None:
    with app.app_context():
        assert notifications.notify([], Kind.LEASE_ENDING, community_id=site.a, date="x") == []
        assert db.session.scalars(select(Notification)).all() == []
