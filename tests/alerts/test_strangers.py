"""Strangers: unknown faces at the doors (real photos), clustered, one alert per person."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from PIL import Image, ImageEnhance
from sqlalchemy import func, select

from gatekeeper.vocabulary import AlertType, Severity
from server.alerts.strangers import similar_events
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    Community,
    StrangerCluster,
    StrangerSighting,
    WatchlistEntry,
)
from tests import factories
from tests.support.alerts import alerts
from tests.support.api import assert_problem, in_app
from tests.support.faces import enrol_resident, frame, verify_face
from tests.support.published import commands

SECRET = "stranger-door-secret"
# 10:00 in Shanghai: daytime, so only the count and door rules apply.
MORNING = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
# 23:30 in Shanghai.
NIGHT = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


@pytest.fixture
def site(app):
    """Community A with two doors (one device each, no depth camera) and nobody enrolled."""
    with in_app(app):
        w = factories.world(door_secret=SECRET)
        side = factories.access_point(w.a, name="Side gate")
        side_device, _secret = factories.device(side, secret=SECRET)
        w.door_a.requires_depth = side.requires_depth = False
        db.session.commit()
        return {
            "a": w.a.id,
            "b": w.b.id,
            "front": w.device_a.id,
            "side": side_device.id,
            "unit": w.unit_a.id,
        }


def verify(client, device_id: str, image: bytes) -> dict:
    return verify_face(client, f"{device_id}.{SECRET}", image)


def biden(variant: int = 0) -> bytes:
    """Biden's photo at a door, a little different each time (size, brightness)."""
    data = frame("biden.jpg", face_height=(560, 520, 600, 480, 540)[variant % 5])
    if variant < 5:
        return data
    image = ImageEnhance.Brightness(Image.open(io.BytesIO(data))).enhance(0.8)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def count(app, model) -> int:
    with in_app(app):
        return db.session.scalar(select(func.count()).select_from(model))


def test_a_stranger_seen_three_times_raises_one_alert(app, client, site, published) -> None:
    with time_machine.travel(MORNING, tick=False) as traveller:
        events = []
        for variant in range(2):
            body = verify(client, site["front"], biden(variant))
            assert (body["decision"], body["reason"]) == ("deny", "unknown_face")
            events.append(body["event_id"])
            traveller.shift(timedelta(minutes=10))
        assert alerts(app, AlertType.STRANGER) == []  # twice at one door by day: not yet
        events.append(verify(client, site["front"], biden(2))["event_id"])
    assert count(app, StrangerCluster) == 1 and count(app, StrangerSighting) == 3
    [alert] = alerts(app, AlertType.STRANGER)
    assert alert.summary == "Unknown person seen 3 times at 1 door since 10:00"
    assert alert.severity is Severity.MEDIUM
    assert alert.evidence["event_ids"] == events
    assert alert.evidence["where"] == ["A door"]
    assert alert.evidence["triggers"] == ["sightings"]
    assert alert.evidence["first_seen"] == MORNING.isoformat()
    assert alert.evidence["last_seen"] == (MORNING + timedelta(minutes=20)).isoformat()
    # The face crops are kept (keep_stranger_crops is on by default) and officers see them:
    # the alert stores the events, its payload links their pictures.
    assert "snapshots" not in alert.evidence
    officer = factories.Api(client, "officer_a")
    shown = officer.get(f"/alerts/{alert.id}").json["evidence"]
    assert shown["snapshots"] == [f"/api/v1/events/{e}/snapshot" for e in events]
    crop = officer.get(f"/events/{events[0]}/snapshot")
    assert crop.status_code == 200 and crop.mimetype == "image/jpeg"
    with in_app(app):
        cluster = db.session.scalar(select(StrangerCluster))
        assert cluster.alert_id == alert.id and cluster.sightings == 3
        assert cluster.status == "watching"
    assert commands(published) == []  # no door opened

    # A fourth sighting, at the other door, brings the same alert up to date.
    with time_machine.travel(MORNING + timedelta(minutes=45), tick=False):
        fourth = verify(client, site["side"], biden(3))["event_id"]
    [updated] = alerts(app, AlertType.STRANGER)
    assert updated.id == alert.id
    assert updated.summary == "Unknown person seen 4 times at 2 doors since 10:00"
    assert updated.evidence["event_ids"] == [*events, fourth]
    assert updated.evidence["where"] == ["A door", "Side gate"]
    assert updated.evidence["sightings"] == 4


def test_the_officer_lists_and_reads_strangers(app, client, site) -> None:
    with time_machine.travel(MORNING, tick=False):
        for variant in range(3):
            verify(client, site["front"], biden(variant))
        # Tokens are made and used inside the frozen time: they expire after TOKEN_TTL_HOURS.
        officer = factories.Api(client, "officer_a")
        listed = officer.get(f"/communities/{site['a']}/strangers")
        assert listed.status_code == 200, listed.json
        [stranger] = listed.json
        assert stranger["status"] == "watching" and stranger["sighting_count"] == 3
        assert len(stranger["sightings"]) == 3
        newest = stranger["sightings"][0]
        assert newest["access_point"]["name"] == "A door"
        assert newest["snapshot_url"] == f"/api/v1/events/{newest['event_id']}/snapshot"
        one = officer.get(f"/strangers/{stranger['id']}")
        assert one.status_code == 200 and one.json["sightings"] == stranger["sightings"]
        assert officer.get(f"/communities/{site['a']}/strangers?status=known").json == []
        assert_problem(officer.get(f"/communities/{site['b']}/strangers"), 404)
        for username in ("staff_a", "resident_a"):
            other = factories.Api(client, username)
            assert_problem(other.get(f"/communities/{site['a']}/strangers"), 404)
            assert_problem(other.get(f"/strangers/{stranger['id']}"), 404)
            known = other.post(f"/strangers/{stranger['id']}/known", json={"note": "x"})
            assert_problem(known, 404)


def test_a_known_stranger_stays_quiet(app, client, site) -> None:
    with time_machine.travel(MORNING, tick=False) as traveller:
        verify(client, site["front"], biden(0))
        traveller.shift(timedelta(minutes=5))
        verify(client, site["front"], biden(1))
        officer = factories.Api(client, "officer_a")
        [stranger] = officer.get(f"/communities/{site['a']}/strangers").json
        assert_problem(officer.post(f"/strangers/{stranger['id']}/known", json={}), 422)
        marked = officer.post(
            f"/strangers/{stranger['id']}/known", json={"note": "Mrs Li's son, visits weekly"}
        )
        assert marked.status_code == 200, marked.json
        assert marked.json["status"] == "known"
        for variant in (2, 3, 4):
            traveller.shift(timedelta(minutes=5))
            verify(client, site["side"], biden(variant))
    assert alerts(app, AlertType.STRANGER) == []
    with in_app(app):
        cluster = db.session.scalar(select(StrangerCluster))
        assert cluster.sightings == 5 and cluster.note == "Mrs Li's son, visits weekly"


def test_a_residents_face_never_makes_a_cluster(app, client, site, published) -> None:
    with in_app(app):
        enrol_resident(site["a"], site["unit"], "奥巴马", "obama.jpg")
    with time_machine.travel(NIGHT, tick=False):
        for photo in ("obama2.jpg", "obama3.jpg", "obama2.jpg"):
            body = verify(client, site["front"], frame(photo))
            assert body["reason"] == "resident"
    assert count(app, StrangerCluster) == 0 and alerts(app, AlertType.STRANGER) == []
    assert len(commands(published)) == 3


def test_one_sighting_at_night_alerts_at_once(app, client, site) -> None:
    with time_machine.travel(NIGHT, tick=False):
        event_id = verify(client, site["front"], biden(0))["event_id"]
    [alert] = alerts(app, AlertType.STRANGER)
    assert alert.summary == "Unknown person seen once at 1 door since 23:30"
    assert alert.evidence["triggers"] == ["night"] and alert.evidence["event_ids"] == [event_id]


def test_two_doors_alert_and_the_rest_update_the_same_alert(app, client, site) -> None:
    with time_machine.travel(MORNING, tick=False) as traveller:
        verify(client, site["front"], biden(0))
        assert alerts(app, AlertType.STRANGER) == []
        traveller.shift(timedelta(minutes=3))
        verify(client, site["side"], biden(1))
        [alert] = alerts(app, AlertType.STRANGER)
        assert alert.evidence["triggers"] == ["access_points"]
        assert alert.summary == "Unknown person seen 2 times at 2 doors since 10:00"
        for variant in (2, 3, 4, 5):  # the count rule too from the third: still one alert
            traveller.shift(timedelta(minutes=3))
            verify(client, site["front"], biden(variant))
    [same] = alerts(app, AlertType.STRANGER)
    assert same.id == alert.id and len(same.evidence["event_ids"]) == 6
    assert same.evidence["triggers"] == ["access_points", "sightings"]
    assert same.summary == "Unknown person seen 6 times at 2 doors since 10:00"
    assert count(app, StrangerCluster) == 1


def test_two_strangers_are_two_clusters(app, client, site) -> None:
    with time_machine.travel(MORNING, tick=False):
        verify(client, site["front"], biden(0))
        verify(client, site["front"], frame("obama2.jpg"))
        verify(client, site["front"], frame("obama3.jpg"))  # the same unknown person as obama2
    with in_app(app):
        sizes = sorted(c.sightings for c in db.session.scalars(select(StrangerCluster)))
    assert sizes == [1, 2]


def test_sightings_a_day_apart_do_not_add_up(app, client, site) -> None:
    with time_machine.travel(MORNING - timedelta(hours=25), tick=False):
        verify(client, site["front"], biden(0))
    with time_machine.travel(MORNING, tick=False):
        verify(client, site["front"], biden(1))
        verify(client, site["front"], biden(2))
    assert alerts(app, AlertType.STRANGER) == []
    with in_app(app):
        assert db.session.scalar(select(StrangerCluster)).sightings == 3


def test_settings_tune_the_rules(app, client, site) -> None:
    with in_app(app):
        community = db.session.get(Community, site["a"])
        community.settings = {"stranger_sightings": 2, "night_start": "09:00"}
        db.session.commit()
    with time_machine.travel(MORNING - timedelta(hours=2), tick=False):  # 08:00
        verify(client, site["front"], biden(0))
    assert alerts(app, AlertType.STRANGER) == []
    with time_machine.travel(MORNING - timedelta(minutes=90), tick=False):  # 08:30
        verify(client, site["front"], biden(1))
    [alert] = alerts(app, AlertType.STRANGER)
    assert alert.evidence["triggers"] == ["sightings"]


def test_crops_follow_the_settings(app, client, site) -> None:
    with in_app(app):
        community = db.session.get(Community, site["a"])
        community.settings = {"keep_stranger_crops": False}
        db.session.commit()
    with time_machine.travel(NIGHT, tick=False):
        event_id = verify(client, site["front"], biden(0))["event_id"]
    [alert] = alerts(app, AlertType.STRANGER)
    assert "snapshots" not in alert.evidence or alert.evidence["snapshots"] == []
    with in_app(app):
        assert db.session.get(AccessEvent, event_id).snapshot_path is None


def test_promote_a_stranger_to_the_watchlist(app, client, site) -> None:
    with time_machine.travel(MORNING, tick=False):
        verify(client, site["front"], biden(0))
        officer = factories.Api(client, "officer_a")
        [stranger] = officer.get(f"/communities/{site['a']}/strangers").json
        assert_problem(
            officer.post(f"/strangers/{stranger['id']}/watchlist", json={"name": "X"}), 422
        )
        assert_problem(
            factories.Api(client, "staff_a").post(
                f"/strangers/{stranger['id']}/watchlist",
                json={"name": "Loiterer", "category": "wanted"},
            ),
            404,
        )
        promoted = officer.post(
            f"/strangers/{stranger['id']}/watchlist",
            json={"name": "Loiterer", "category": "wanted", "door_opens": False},
        )
        assert promoted.status_code == 201, promoted.json
        assert promoted.json["door_opens"] is False and promoted.json["name"] == "Loiterer"
        assert officer.get(f"/strangers/{stranger['id']}").json["status"] == "watchlisted"
        assert_problem(officer.post(f"/strangers/{stranger['id']}/known", json={"note": "no"}), 409)
        # The next time this face comes to a door it is denied, and the officers told.
        body = verify(client, site["side"], biden(1))
    assert (body["decision"], body["reason"]) == ("deny", "watchlist")
    with in_app(app):
        assert db.session.scalar(select(WatchlistEntry.name)) == "Loiterer"
        hit = db.session.scalar(select(Alert).where(Alert.type == AlertType.WATCHLIST_HIT))
        assert hit.evidence["event_ids"] == [body["event_id"]]
        assert db.session.scalar(select(StrangerCluster)).sightings == 1  # no more sightings


def test_where_else_was_this_face_seen(app, client, site) -> None:
    with in_app(app):
        enrol_resident(site["a"], site["unit"], "奥巴马", "obama.jpg")
    with time_machine.travel(MORNING, tick=False) as traveller:
        strangers = []
        for variant in range(3):
            strangers.append(verify(client, site["front"], biden(variant))["event_id"])
            traveller.shift(timedelta(minutes=1))
        residents = []
        for photo in ("obama2.jpg", "obama3.jpg"):
            residents.append(verify(client, site["side"], frame(photo))["event_id"])
            traveller.shift(timedelta(minutes=1))
    with in_app(app):
        found = similar_events(db.session.get(AccessEvent, strangers[0]))
        assert {event.id for event, _d in found} == set(strangers[1:])
        assert all(0 <= distance < 0.5 for _e, distance in found)
        assert [d for _e, d in found] == sorted(d for _e, d in found)
        assert len(similar_events(db.session.get(AccessEvent, strangers[0]), limit=1)) == 1
        same_person = similar_events(db.session.get(AccessEvent, residents[1]))
        assert [(event.id, distance) for event, distance in same_person] == [(residents[0], None)]
