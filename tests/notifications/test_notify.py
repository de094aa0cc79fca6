"""Who is told what: the notification service, its choices, and the places that call it.

A guest's pass used at a door tells its issuer; an elder's tag leaving the perimeter tells
the guardians; a lease ending within a week tells the tenant once (frozen time); each account's
choices decide the channels, and nothing is sent while the request waits (only queued).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from hardware.messages import EventMessage, EventType
from hardware.topics import device_topic
from server.extensions import db
from server.models import (
    Notification,
    NotificationDelivery,
    NotificationGateway,
    Person,
    PushSubscription,
    User,
    utcnow,
)
from server.notifications import service as notifications
from server.notifications.kinds import Channel, Kind, line
from server.worker import Worker
from server.worker.ingest import DeviceIngest
from tests import factories
from tests.factories import Api
from tests.support.elders import ELDER_TAG, build_wandering_elder
from tests.support.passes import LEASE_END, NOW, pass_site

_seq = itertools.count(1)


@pytest.fixture
def site(app):
    return pass_site(app)


def told(app, user_id: str | None = None) -> list[Notification]:
    with app.app_context():
        statement = select(Notification).order_by(Notification.created_at, Notification.id)
        if user_id is not None:
            statement = statement.where(Notification.user_id == user_id)
        rows = list(db.session.scalars(statement))
        db.session.expunge_all()
        return rows


def deliveries(app) -> list[NotificationDelivery]:
    with app.app_context():
        rows = list(db.session.scalars(select(NotificationDelivery)))
        db.session.expunge_all()
        return rows


def user_id(app, username: str) -> str:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


def with_vapid(app, monkeypatch) -> None:
    import dataclasses

    from tests.notifications.keys import VAPID_PEM

    settings = dataclasses.replace(
        app.config["SETTINGS"], vapid_private_key=VAPID_PEM, vapid_contact="mailto:ops@example.cn"
    )
    monkeypatch.setitem(app.config, "SETTINGS", settings)


# The service ----------------------------------------------------------------------------------


def test_a_kind_is_told_with_exactly_its_params(app, site) -> None:
    with app.app_context():
        [made] = notifications.notify(
            [site.resident_person],
            Kind.COURIER_CODE_USED,
            community_id=site.a,
            door="A door",
            at=NOW,
        )
        assert made.params == {"door": "A door", "at": NOW.isoformat()}
        with pytest.raises(ValueError, match="courier_code_used takes"):
            notifications.notify(
                [site.resident_person], Kind.COURIER_CODE_USED, community_id=site.a, door="A door"
            )
        db.session.commit()
    [row] = told(app)
    assert row.user_id == user_id(app, "resident_a") and row.in_portal and row.read_at is None
    assert deliveries(app) == []  # no push subscription, SMS off by default


def test_choices_decide_the_channels(app, site, monkeypatch) -> None:
    with_vapid(app, monkeypatch)
    resident = user_id(app, "resident_a")
    with app.app_context():
        db.session.get(Person, site.resident_person).phone = "13800138000"
        db.session.add(
            NotificationGateway(
                community_id=site.a, url="https://sms.example.cn/send", secret_encrypted=b"x"
            )
        )
        db.session.add(
            PushSubscription(
                user_id=resident, endpoint="https://push.example/1", p256dh="k", auth="a"
            )
        )
        defaults = notifications.preferences(resident)
        assert defaults[Kind.PASS_USED] == {
            Channel.PORTAL: True,
            Channel.PUSH: True,
            Channel.SMS: False,
        }
        notifications.intercom_call(site.unit_a, community_id=site.a, door_name="A door", at=NOW)
        # Push off, SMS on for intercom calls; the portal off for courier codes.
        notifications.set_preferences(
            resident,
            {
                Kind.INTERCOM_CALL: {Channel.PUSH: False, Channel.SMS: True},
                Kind.COURIER_CODE_USED: {Channel.PORTAL: False, Channel.PUSH: False},
            },
        )
        notifications.intercom_call(site.unit_a, community_id=site.a, door_name="A door", at=NOW)
        assert (
            notifications.courier_code_used(
                [resident], community_id=site.a, door_name="A door", at=NOW
            )
            == []
        )  # no channel left: nothing stored
        db.session.commit()
    first, second = told(app, resident)
    channels = {}
    for delivery in deliveries(app):
        channels.setdefault(delivery.notification_id, set()).add(delivery.channel)
    assert channels == {first.id: {"push"}, second.id: {"sms"}}
    assert [d.status for d in deliveries(app)] == ["pending", "pending"]  # queued, not sent


def test_an_intercom_call_tells_every_account_of_the_unit_only(app, site) -> None:
    with app.app_context():
        unit = db.session.get(factories.Unit, site.unit_a)
        second = factories.user(factories.UserRole.RESIDENT, unit_of=unit, username="resident_a2")
        gone = factories.user(factories.UserRole.RESIDENT, unit_of=unit, username="moved_out")
        gone.disabled_at = utcnow()
        made = notifications.intercom_call(
            site.unit_a, community_id=site.a, door_name="A door", at=NOW
        )
        assert {row.user_id for row in made} == {user_id(app, "resident_a"), second.id}
        db.session.commit()


def test_the_portal_line_names_the_kind_params_in_the_community_zone(app) -> None:
    with app.test_request_context(headers={"Accept-Language": "en"}):
        text = line(
            "pass_used",
            {"guest": "王小二", "door": "A door", "at": NOW.isoformat()},
            "Asia/Shanghai",
        )
        assert text == "王小二's pass was used at A door (11-21 16:30)."
        assert line("lease_ending", {}, "Asia/Shanghai").startswith("Your lease ends on —")


# Where kinds are told -------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_a_used_pass_tells_its_issuer(app, client, site) -> None:
    issued = Api(client, "resident_a").post(
        "/passes", json={"guest_name": "王小二", "access_point_ids": [site.door]}
    )
    assert issued.status_code == 201, issued.json
    answer = client.post(
        "/api/v1/verify/qr",
        json={"token": issued.json["token"]},
        headers={"Authorization": f"Bearer {site.door_credential}"},
    )
    assert answer.json["decision"] == "grant", answer.json
    [row] = told(app)
    assert row.user_id == user_id(app, "resident_a") and row.kind == "pass_used"
    assert row.params == {
        "guest": "王小二",
        "door": "A door",
        "at": NOW.isoformat(),
        "pass_id": issued.json["id"],
    }
    # A denied scan (the one use is spent) counts nothing and tells nobody.
    again = client.post(
        "/api/v1/verify/qr",
        json={"token": issued.json["token"]},
        headers={"Authorization": f"Bearer {site.door_credential}"},
    )
    assert again.json["decision"] == "deny"
    assert len(told(app)) == 1


@time_machine.travel(NOW, tick=False)
def test_a_pass_used_offline_tells_its_issuer_when_the_door_uploads_it(app, client, site) -> None:
    issued = Api(client, "resident_a").post(
        "/passes", json={"guest_name": "王小二", "access_point_ids": [site.door]}
    )
    assert issued.status_code == 201, issued.json
    at = NOW - timedelta(minutes=3)  # the door was offline then
    message = EventMessage(
        EventType.PASS_USED, next(_seq), at, {"token": issued.json["token"], "direction": "in"}
    )
    ingest = DeviceIngest(app)
    ingest.handle(device_topic(site.a, site.door_device, "evt"), message.encode())
    [row] = told(app)
    assert (row.user_id, row.kind) == (user_id(app, "resident_a"), "pass_used")
    assert row.params["at"] == at.isoformat() and row.params["door"] == "A door"


def test_a_wandering_elder_tells_the_guardians(app) -> None:
    site = build_wandering_elder(app, guardian_window_minutes=0)
    with app.app_context():
        elder = db.session.get(Person, site.elder_id)
        daughter = factories.person(site.community_id, "王小红")
        neighbour = factories.person(site.community_id, "赵六")
        elder.guardians = [daughter]
        account = factories.user(factories.UserRole.RESIDENT, username="daughter")
        account.person_id = daughter.id
        other = factories.user(factories.UserRole.RESIDENT, username="neighbour")
        other.person_id = neighbour.id
        db.session.commit()
        account_id = account.id
    message = EventMessage(
        EventType.TAG_READ, next(_seq), utcnow(), {"tag": ELDER_TAG, "rssi": -50}
    )
    ingest = DeviceIngest(app)
    ingest.handle(device_topic(site.community_id, site.reader_id, "evt"), message.encode())
    [row] = told(app)
    assert (row.user_id, row.kind) == (account_id, "tag_left_perimeter")
    assert row.params["name"] == "王老明" and row.params["place"] == "North gate"


def test_a_tenant_is_told_once_a_week_before_the_lease_ends(app, site) -> None:
    tenant = user_id(app, "tenant_a")
    worker = Worker(app)

    def run_job() -> None:
        worker.notify_leases_ending()

    with time_machine.travel(LEASE_END - timedelta(days=7, seconds=1), tick=False):
        run_job()
    assert told(app) == []
    with time_machine.travel(LEASE_END - timedelta(days=7), tick=False):
        run_job()
        run_job()
    with time_machine.travel(LEASE_END - timedelta(days=2), tick=False):
        run_job()
    [row] = told(app)
    assert (row.user_id, row.kind) == (tenant, "lease_ending")
    assert row.params == {"date": "2026-12-01"}  # in Asia/Shanghai


def test_a_renewed_lease_is_not_told(app, site) -> None:
    with app.app_context():
        factories.lease(
            site.tenant_person,
            site.unit_a2,
            starts_at=LEASE_END,
            ends_at=LEASE_END + timedelta(days=365),
        )
        db.session.commit()
    with time_machine.travel(LEASE_END - timedelta(days=3), tick=False), app.app_context():
        assert notifications.notify_leases_ending() == 1
        db.session.commit()
    assert told(app) == []


def test_a_used_courier_code_tells_whoever_issued_it(app, site) -> None:
    resident, tenant = user_id(app, "resident_a"), user_id(app, "tenant_a")
    with app.app_context():
        made = notifications.courier_code_used(
            [resident], community_id=site.a, door_name="A door", at=NOW
        )
        assert [(row.user_id, row.kind) for row in made] == [(resident, "courier_code_used")]
        db.session.commit()
    assert told(app, tenant) == []
