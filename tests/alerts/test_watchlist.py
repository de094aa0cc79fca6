"""The watchlist: officers enrol real photos; every face at a door is checked against it."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from gatekeeper.vocabulary import AlertType, Severity
from server import create_app
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    Community,
    StrangerCluster,
    UserRole,
    WatchlistEntry,
)
from tests import factories
from tests.conftest import Recorder, app_environment
from tests.fetch_test_data import test_image as photo_path
from tests.support.alerts import alerts
from tests.support.api import assert_problem, in_app
from tests.support.faces import enrol_resident, frame, verify_face
from tests.support.published import commands

SECRET = "watchlist-door-secret"


@pytest.fixture
def site(app):
    """Community A's door (no depth camera), an officer of B, nobody enrolled."""
    with in_app(app):
        w = factories.world(door_secret=SECRET)
        w.door_a.requires_depth = False
        factories.user(UserRole.OFFICER, communities=[w.b], username="officer_b")
        db.session.commit()
        return {"a": w.a.id, "b": w.b.id, "door": w.device_a.id, "unit": w.unit_a.id}


def verify(client, site, image: bytes) -> dict:
    return verify_face(client, f"{site['door']}.{SECRET}", image)


def upload(api, cid: str, image: bytes, **form: str):
    fields = {"name": "王某", "category": "wanted", **form}
    return api.post(
        f"/communities/{cid}/watchlist",
        json=None,
        data={**fields, "image": (io.BytesIO(image), "photo.jpg")},
        content_type="multipart/form-data",
    )


def photo(name: str) -> bytes:
    return photo_path(name).read_bytes()


def hits(app) -> list[Alert]:
    return alerts(app, AlertType.WATCHLIST_HIT)


def resident_obama(app, site) -> str:
    with in_app(app):
        return enrol_resident(site["a"], site["unit"], "奥巴马", "obama.jpg")


def without_event_id(answer: dict) -> dict:
    return {key: value for key, value in answer.items() if key != "event_id"}


def test_a_wanted_stranger_alerts_at_once_and_the_terminal_learns_nothing(
    app, client, site, published
) -> None:
    ordinary = verify(client, site, frame("obama3.jpg"))  # before the entry
    officer = factories.Api(client, "officer_a")
    enrolled = upload(officer, site["a"], photo("obama.jpg"), note="Seen near the car park")
    assert enrolled.status_code == 201, enrolled.json
    entry = enrolled.json
    assert (entry["name"], entry["category"], entry["door_opens"]) == ("王某", "wanted", True)
    assert "template" not in str(entry)
    listed = officer.get(f"/communities/{site['a']}/watchlist")
    assert [e["id"] for e in listed.json] == [entry["id"]]

    first = verify(client, site, frame("obama3.jpg"))
    assert without_event_id(first) == without_event_id(ordinary)  # the ordinary answer
    [alert] = hits(app)
    assert alert.severity is Severity.HIGH
    assert alert.summary.startswith("Wanted person 王某 at A door")
    assert alert.evidence["watchlist_entry_id"] == entry["id"]
    assert alert.evidence["event_ids"] == [first["event_id"]]
    assert alert.evidence["door_opened"] is False and alert.evidence["live"] is True
    assert "snapshots" not in alert.evidence  # links are made from the events when shown
    shown = officer.get(f"/alerts/{alert.id}").json["evidence"]
    assert shown["snapshots"] == [f"/api/v1/events/{first['event_id']}/snapshot"]
    assert alert.dedup_key == f"watchlist:{entry['id']}"
    second = verify(client, site, frame("obama2.jpg"))
    [same] = hits(app)  # one alert per entry while open, brought up to date
    assert same.id == alert.id
    assert same.evidence["event_ids"] == [first["event_id"], second["event_id"]]
    with in_app(app):
        # Staff read events: nothing in the event says "watchlist".
        event = db.session.get(AccessEvent, second["event_id"])
        assert "watchlist" not in str(event.details) and event.reason == "unknown_face"
        # The officer knows who this is: hits are no stranger sightings (only the first was).
        assert db.session.scalar(select(StrangerCluster.sightings)) == 1
    assert commands(published) == []


def test_a_resident_on_the_watchlist_still_gets_in_by_default(app, client, site, published):
    obama = resident_obama(app, site)
    ordinary = verify(client, site, frame("obama2.jpg"))
    assert ordinary["reason"] == "resident" and hits(app) == []
    officer = factories.Api(client, "officer_a")
    assert upload(officer, site["a"], photo("obama.jpg"), category="missing").status_code == 201
    answer = verify(client, site, frame("obama2.jpg"))
    assert without_event_id(answer) == without_event_id(ordinary)
    assert len(commands(published)) == 2
    [alert] = hits(app)
    assert alert.summary.startswith("Missing person 王某 at A door")
    assert alert.evidence["door_opened"] is True
    with in_app(app):
        assert db.session.get(AccessEvent, answer["event_id"]).person_id == obama


def test_door_opens_false_denies_with_reason_watchlist(app, client, site, published) -> None:
    obama = resident_obama(app, site)
    officer = factories.Api(client, "officer_a")
    entry = upload(officer, site["a"], photo("obama.jpg"), door_opens="false")
    assert entry.status_code == 201 and entry.json["door_opens"] is False
    answer = verify(client, site, frame("obama3.jpg"))
    assert (answer["decision"], answer["reason"]) == ("deny", "watchlist")
    assert "subject" not in answer and "open_ms" not in answer
    assert commands(published) == []
    [alert] = hits(app)
    assert alert.evidence["door_opened"] is False
    with in_app(app):
        event = db.session.get(AccessEvent, answer["event_id"])
        assert (event.rule, event.person_id) == ("watchlist.deny", obama)
    # A stranger on the watchlist is denied with the same reason.
    biden = upload(officer, site["a"], photo("biden.jpg"), name="B", door_opens="0").json
    denied = verify(client, site, frame("biden.jpg"))
    assert denied["reason"] == "watchlist"
    with in_app(app):
        event = db.session.get(AccessEvent, denied["event_id"])
        assert event.person_id is None and event.template_encrypted is not None
    # Once removed, the face is an ordinary stranger again.
    assert officer.delete(f"/watchlist/{biden['id']}").status_code == 204
    assert verify(client, site, frame("biden.jpg"))["reason"] == "unknown_face"
    assert len(hits(app)) == 2


def test_bad_photos_are_refused_and_nothing_stored(app, client, site) -> None:
    officer = factories.Api(client, "officer_a")
    blank = io.BytesIO()
    Image.new("RGB", (800, 600), (90, 90, 90)).save(blank, "JPEG")
    body = assert_problem(upload(officer, site["a"], blank.getvalue()), 422)
    assert body["reason"] == "no_face"
    body = assert_problem(upload(officer, site["a"], frame("obama2.jpg", "biden.jpg")), 422)
    assert body["reason"] == "multiple_faces"
    body = assert_problem(upload(officer, site["a"], b"not a picture"), 422)
    assert body["reason"] == "unsupported_format"
    assert_problem(upload(officer, site["a"], photo("obama.jpg"), category="stalker"), 422)
    assert_problem(upload(officer, site["a"], photo("obama.jpg"), name=""), 422)
    assert_problem(officer.post(f"/communities/{site['a']}/watchlist", json={"name": "x"}), 415)
    with in_app(app):
        assert db.session.scalar(select(func.count()).select_from(WatchlistEntry)) == 0


def test_only_the_communitys_officers_see_the_watchlist(app, client, site) -> None:
    officer = factories.Api(client, "officer_a")
    entry = upload(officer, site["a"], photo("obama.jpg")).json
    for username in ("officer_b", "staff_a", "resident_a", "staff_b", "resident_b"):
        other = factories.Api(client, username)
        assert_problem(other.get(f"/communities/{site['a']}/watchlist"), 404)
        assert_problem(upload(other, site["a"], photo("obama2.jpg")), 404)
        assert_problem(other.delete(f"/watchlist/{entry['id']}"), 404)
    # Staff do not even find an empty watchlist in their own community.
    assert_problem(factories.Api(client, "staff_b").get(f"/communities/{site['b']}/watchlist"), 404)
    assert factories.Api(client, "officer_b").get(f"/communities/{site['b']}/watchlist").json == []
    assert factories.Api(client, "admin").get(f"/communities/{site['a']}/watchlist").json
    with in_app(app):
        assert db.session.scalar(select(func.count()).select_from(WatchlistEntry)) == 1


def test_another_process_sees_new_and_removed_entries(app, client, site, workdir, database_url):
    """Two apps on one database stand for two web workers."""
    other = create_app(app_environment(workdir, database_url))
    other.extensions["mqtt_publisher"] = Recorder()
    other_client = other.test_client()
    verify(other_client, site, frame("biden.jpg"))  # its watchlist is loaded (empty)
    officer = factories.Api(client, "officer_a")
    entry = upload(officer, site["a"], photo("biden.jpg"), door_opens="false").json
    assert verify(other_client, site, frame("biden.jpg"))["reason"] == "watchlist"
    assert officer.delete(f"/watchlist/{entry['id']}").status_code == 204
    assert verify(other_client, site, frame("biden.jpg"))["reason"] == "unknown_face"


def test_the_watchlist_uses_the_face_tolerance(app, client, site) -> None:
    officer = factories.Api(client, "officer_a")
    upload(officer, site["a"], photo("obama.jpg"), door_opens="false")
    with in_app(app):
        community = db.session.get(Community, site["a"])
        community.settings = {"face_tolerance": 0.2}  # obama3 is ~0.34 from obama
        db.session.commit()
    assert verify(client, site, frame("obama3.jpg"))["reason"] == "unknown_face"
    assert hits(app) == []
