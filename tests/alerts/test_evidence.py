"""Evidence that stays: held events and crops survive retention; the signed evidence bundle."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
import time_machine
from flask import Flask
from PIL import Image
from sqlalchemy import select, text

from gatekeeper.vocabulary import AlertStatus, AlertType, CredentialType, Decision, Severity
from server.access import bundle, retention, snapshots
from server.alerts import evidence
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    AuditEntry,
    Community,
    SitePlan,
    StrangerCluster,
    StrangerSighting,
    UserRole,
)
from tests import factories
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, in_app
from tests.support.pages import csrf, login

NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def _event(community_id: str, at: datetime, **values: object) -> AccessEvent:
    event = AccessEvent(
        community_id=community_id,
        occurred_at=at,
        credential_type=CredentialType.FACE,
        decision=Decision.DENY,
        reason="unknown_face",
        **values,
    )
    db.session.add(event)
    db.session.flush()
    snapshots.store(event, _jpeg())
    db.session.commit()
    return event


def _alert(community_id: str, event_ids: list[str], **values: object) -> Alert:
    values.setdefault("type", AlertType.STRANGER)
    alert = Alert(
        community_id=community_id,
        severity=Severity.MEDIUM,
        summary="Unknown person seen 3 times",
        evidence={"event_ids": event_ids},
        **values,
    )
    db.session.add(alert)
    db.session.commit()
    return alert


def _cluster(community_id: str, event: AccessEvent, held: bool) -> StrangerCluster:
    cluster = StrangerCluster(
        community_id=community_id,
        centroid_encrypted=b"x",
        first_seen_at=event.occurred_at,
        last_seen_at=event.occurred_at,
        held_at=event.occurred_at if held else None,
    )
    db.session.add(cluster)
    db.session.flush()
    db.session.add(
        StrangerSighting(
            community_id=community_id,
            cluster_id=cluster.id,
            event_id=event.id,
            seen_at=event.occurred_at,
        )
    )
    db.session.commit()
    return cluster


def _kept() -> set[str]:
    db.session.expire_all()
    return set(db.session.scalars(select(AccessEvent.id)))


def _crop_exists(event_id: str) -> bool:
    path = db.session.scalar(select(AccessEvent.snapshot_path).where(AccessEvent.id == event_id))
    return bool(path) and (snapshots._root() / path).exists()


def test_retention_keeps_held_evidence_and_lets_it_go_when_the_hold_ends(ctx) -> None:
    community = factories.community()
    community.settings = {
        "event_retention_days": 30,
        "snapshot_retention_days": 5,
        "evidence_hold_days": 10,
    }
    db.session.commit()
    old = NOW - timedelta(days=40)
    open_event = _event(community.id, old)
    recent_event = _event(community.id, old)
    stale_event = _event(community.id, old)
    held_sighting = _event(community.id, old)
    plain = _event(community.id, old)
    open_alert = _alert(community.id, [open_event.id])
    _alert(
        community.id,
        [recent_event.id],
        status=AlertStatus.RESOLVED,
        updated_at=NOW - timedelta(days=5),
    )
    _alert(
        community.id,
        [stale_event.id],
        status=AlertStatus.RESOLVED,
        updated_at=NOW - timedelta(days=11),
    )
    cluster = _cluster(community.id, held_sighting, held=True)
    held = {open_event.id, recent_event.id, held_sighting.id}
    assert evidence.held_event_ids(NOW) == held

    with time_machine.travel(NOW, tick=False):
        # Crops past snapshot_retention_days: the held ones stay.
        assert snapshots.erase_expired() == 2
        db.session.commit()
        assert {e for e in held | {stale_event.id, plain.id} if _crop_exists(e)} == held
        retention.enforce(NOW)
    assert _kept() == held
    assert all(_crop_exists(e) for e in held)
    assert db.session.scalars(select(StrangerSighting.event_id)).all() == [held_sighting.id]

    # The alert resolved and the hold released: gone once the hold period is over.
    open_alert.status, open_alert.updated_at = AlertStatus.RESOLVED, NOW
    db.session.get(StrangerCluster, cluster.id).held_at = None
    db.session.commit()
    retention.enforce(NOW + timedelta(days=1))
    assert _kept() == {open_event.id, recent_event.id}
    retention.enforce(NOW + timedelta(days=11))
    assert _kept() == set()


@pytest.mark.postgresql
def test_a_month_holding_held_evidence_is_kept_until_the_hold_ends(ctx) -> None:
    community = factories.community()
    community.settings = {"event_retention_days": 30}
    db.session.commit()
    month = retention.month_start(NOW - timedelta(days=120))
    retention.ensure_partition(month)
    db.session.commit()
    name = retention.partition_name(month)
    held = _event(community.id, month + timedelta(days=3))
    unheld = _event(community.id, month + timedelta(days=3))
    unheld_crop = snapshots._root() / unheld.snapshot_path
    assert (
        db.session.scalar(
            text("SELECT tableoid::regclass::text FROM access_events WHERE id = :id"),
            {"id": held.id},
        )
        == name
    )
    cluster = _cluster(community.id, held, held=True)

    run = retention.enforce(NOW)
    assert name not in run.partitions_dropped
    assert name in retention.monthly_partitions()
    assert _kept() == {held.id}
    assert _crop_exists(held.id) and not unheld_crop.exists()

    db.session.get(StrangerCluster, cluster.id).held_at = None
    db.session.commit()
    run = retention.enforce(NOW)
    assert name in run.partitions_dropped
    assert _kept() == set()


@pytest.fixture
def officer_b(app: Flask, world: WorldIds) -> str:
    with in_app(app):
        factories.user(
            UserRole.OFFICER,
            communities=[db.session.get(Community, world.b)],
            username="officer_b",
        )
    return "officer_b"


@pytest.fixture
def alert_with_evidence(app: Flask, world: WorldIds) -> tuple[str, list[str]]:
    with in_app(app):
        first = _event(world.a, NOW - timedelta(minutes=3), access_point_id=world.door_a)
        second = AccessEvent(
            community_id=world.a,
            occurred_at=NOW - timedelta(minutes=1),
            access_point_id=world.door_a,
            credential_type=CredentialType.CARD,
            decision=Decision.DENY,
            reason="unknown_card",
        )
        db.session.add(second)
        db.session.commit()
        alert = _alert(
            world.a, [first.id, second.id], access_point_id=world.door_a, type=AlertType.DOOR_FORCED
        )
        return alert.id, [first.id, second.id]


def _keys(api: Api) -> dict[int, bytes]:
    answer = api.get("/alerts/bundle-keys")
    assert answer.status_code == 200, answer.json
    return {k["key_id"]: base64.b64decode(k["public_key"]) for k in answer.json}


def _changed(data: bytes, name: str) -> bytes:
    """The bundle with one byte of ``name`` changed."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            content = source.read(item)
            if item == name:
                content = bytes([content[0] ^ 1]) + content[1:]
            target.writestr(item, content)
    return out.getvalue()


def test_the_bundle_verifies_against_its_manifest_and_signature(
    app, world, client, alert_with_evidence, officer_b
) -> None:
    alert_id, event_ids = alert_with_evidence
    officer = Api(client, "officer_a")
    with time_machine.travel(NOW, tick=False):
        answer = officer.get(f"/alerts/{alert_id}/bundle")
        keys = _keys(officer)  # the keys published then (a key retires in time)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/zip"
    data = answer.get_data()
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    crop = f"crops/{event_ids[0]}.jpg"
    assert names == {
        "alert.json",
        "events.json",
        "events.csv",
        "history.json",
        "site.json",
        crop,
        "manifest.json",
        "signature.json",
    }
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["alert_id"] == alert_id and manifest["community_id"] == world.a
    assert manifest["created_at"] == "2026-11-21T13:00:00.000+00:00"
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == names - {"manifest.json", "signature.json"}
    for name, digest in listed.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert archive.read(crop)[:2] == b"\xff\xd8"  # a JPEG, decrypted
    events = json.loads(archive.read("events.json"))
    assert [e["id"] for e in events] == event_ids
    assert events[0]["crop"] == crop and events[1]["crop"] is None
    rows = list(csv.DictReader(io.StringIO(archive.read("events.csv").decode("utf-8-sig"))))
    assert [r["id"] for r in rows] == event_ids
    site = json.loads(archive.read("site.json"))
    assert site["access_point"]["id"] == world.door_a
    assert site["community"]["id"] == world.a

    assert bundle.verify_bundle(data, keys)["alert_id"] == alert_id
    for name in ("events.csv", crop, "manifest.json"):
        with pytest.raises(bundle.BundleError):
            bundle.verify_bundle(_changed(data, name), keys)
    with pytest.raises(bundle.BundleError):  # a key it was not signed with
        bundle.verify_bundle(data, {k: bytes(reversed(v)) for k, v in keys.items()})

    with in_app(app):
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "alert.bundle"))
        assert entry.target_id == alert_id and entry.details["event_ids"] == event_ids

    # The community's staff may take it too; another community's officer and residents not.
    assert Api(client, "staff_a").get(f"/alerts/{alert_id}/bundle").status_code == 200
    assert_problem(Api(client, "officer_b").get(f"/alerts/{alert_id}/bundle"), 404)
    assert_problem(Api(client, "resident_a").get(f"/alerts/{alert_id}/bundle"), 404)
    assert_problem(Api(client, "resident_a").get("/alerts/bundle-keys"), 404)


def test_an_officer_holds_a_strangers_evidence_and_releases_it(
    app, world, client, officer_b
) -> None:
    with in_app(app):
        event = _event(world.a, NOW - timedelta(days=400))
        cluster_id, event_id = _cluster(world.a, event, held=False).id, event.id
    officer = Api(client, "officer_a")
    answer = officer.client.put(f"/api/v1/strangers/{cluster_id}/hold", headers=officer.headers)
    assert answer.status_code == 200, answer.json
    assert answer.json["held_at"] is not None
    assert_problem(
        client.put(f"/api/v1/strangers/{cluster_id}/hold", headers=Api(client, "staff_a").headers),
        404,  # strangers are the police's: staff see none
    )
    assert_problem(
        client.put(
            f"/api/v1/strangers/{cluster_id}/hold", headers=Api(client, "officer_b").headers
        ),
        404,
    )
    with in_app(app):
        retention.enforce()
        assert db.session.get(AccessEvent, event_id) is not None
    answer = officer.delete(f"/strangers/{cluster_id}/hold")
    assert answer.status_code == 200 and answer.json["held_at"] is None
    with in_app(app):
        retention.enforce()
        assert db.session.get(AccessEvent, event_id) is None
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == cluster_id)
        ).all()
        assert sorted(actions) == ["stranger.hold", "stranger.release"]


def test_the_alert_page_offers_the_bundle_and_holds_the_stranger(app, world, client) -> None:
    with in_app(app):
        event = _event(world.a, NOW - timedelta(days=2), access_point_id=world.door_a)
        cluster = _cluster(world.a, event, held=False)
        alert = _alert(world.a, [event.id])
        alert.evidence = {"event_ids": [event.id], "cluster_id": cluster.id}
        db.session.commit()
        alert_id, cluster_id = alert.id, cluster.id
    login(client, "officer_a")
    page = client.get(f"/alerts/{alert_id}")
    assert page.status_code == 200
    assert f'href="/api/v1/alerts/{alert_id}/bundle"' in page.text
    assert 'id="evidence-hold"' in page.text and 'id="evidence-held"' not in page.text
    bundle_answer = client.get(f"/api/v1/alerts/{alert_id}/bundle")  # the page's session
    assert bundle_answer.status_code == 200 and bundle_answer.mimetype == "application/zip"

    held = client.post(
        f"/alerts/{alert_id}/evidence-hold", data={"csrf_token": csrf(page.text), "action": "hold"}
    )
    assert held.status_code == 303
    page = client.get(f"/alerts/{alert_id}")
    assert 'id="evidence-held"' in page.text
    with in_app(app):
        assert db.session.get(StrangerCluster, cluster_id).held_at is not None
    released = client.post(
        f"/alerts/{alert_id}/evidence-hold",
        data={"csrf_token": csrf(page.text), "action": "release"},
    )
    assert released.status_code == 303
    with in_app(app):
        assert db.session.get(StrangerCluster, cluster_id).held_at is None
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == cluster_id)
        ).all()
        assert sorted(actions) == ["stranger.hold", "stranger.release"]


def test_the_bundle_holds_the_site_plan_with_the_spot_listed_in_the_manifest(
    app, world, client, alert_with_evidence
) -> None:
    """With a site plan, ``site_plan.svg`` joins the bundle: the picture inside it, the alert's
    door marked in red where it was placed, its SHA-256 in the signed manifest."""
    alert_id, _event_ids = alert_with_evidence
    plan = io.BytesIO()
    Image.new("RGB", (400, 200), (240, 240, 240)).save(plan, "PNG")
    with in_app(app):
        door = db.session.get(AccessPoint, world.door_a)
        door.plan_x, door.plan_y = 0.25, 0.5
        db.session.add(
            SitePlan(
                community_id=world.a,
                content_type="image/png",
                image=plan.getvalue(),
                width=400,
                height=200,
                sha256=hashlib.sha256(plan.getvalue()).hexdigest(),
            )
        )
        db.session.commit()
    officer = Api(client, "officer_a")
    with time_machine.travel(NOW, tick=False):
        data = officer.get(f"/alerts/{alert_id}/bundle").get_data()
        keys = _keys(officer)
    manifest = bundle.verify_bundle(data, keys)
    archive = zipfile.ZipFile(io.BytesIO(data))
    svg = archive.read("site_plan.svg")
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert listed["site_plan.svg"] == hashlib.sha256(svg).hexdigest()
    root = ElementTree.fromstring(svg)  # noqa: S314 - the server's own drawing
    ns = {"svg": "http://www.w3.org/2000/svg"}
    picture = root.find("svg:image", ns)
    assert picture.get("href") == "data:image/png;base64," + base64.b64encode(
        plan.getvalue()
    ).decode("ascii")
    spot = root.find(".//svg:g[@data-access-point]", ns)
    assert spot.get("data-access-point") == world.door_a and "spot" in spot.get("class")
    circle = spot.find("svg:circle[@fill='#cf222e']", ns)
    assert (float(circle.get("cx")), float(circle.get("cy"))) == (100.0, 100.0)
    with pytest.raises(bundle.BundleError):
        bundle.verify_bundle(_changed(data, "site_plan.svg"), keys)
