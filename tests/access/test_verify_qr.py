"""POST /api/v1/verify/qr with tokens: every denial, the atomic use count, resident codes."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import passtokens
from server.extensions import db
from server.models import AccessEvent, Lease, VisitorPass
from tests.factories import Api
from tests.support.passes import NOW, pass_site
from tests.support.published import assert_one_open


@pytest.fixture
def site(app):
    return pass_site(app)


def verify(client, credential: str, token: str, **extra):
    answer = client.post(
        "/api/v1/verify/qr",
        json={"token": token, **extra},
        headers={"Authorization": f"Bearer {credential}"},
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def issue(client, username: str = "resident_a", **fields) -> dict:
    answer = Api(client, username).post("/passes", json={"guest_name": "王小二", **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def _raw(token: str) -> bytearray:
    return bytearray(base64.b32decode(token + "=" * (-len(token) % 8)))


def _text(raw: bytes) -> str:
    return base64.b32encode(bytes(raw)).decode().rstrip("=")


@time_machine.travel(NOW, tick=False)
def test_a_guest_pass_opens_the_door_and_the_resident_sees_it(app, client, site, published):
    body = issue(client)
    answer = verify(client, site.door_credential, body["token"])
    assert (answer["decision"], answer["reason"]) == ("grant", "visitor_pass")
    assert answer["subject"] == {"kind": "visitor", "display_name": "王*二"}
    assert_one_open(published, site.door_device, answer["event_id"])
    with app.app_context():
        event = db.session.get(AccessEvent, answer["event_id"])
        assert event.pass_id == body["id"] and event.credential_type.value == "qr"
        assert db.session.get(VisitorPass, body["id"]).uses == 1
    resident = Api(client, "resident_a")
    [use] = resident.get(f"/passes/{body['id']}/uses").json
    assert use["id"] == answer["event_id"] and use["access_point"]["id"] == site.door
    assert answer["event_id"] in [e["id"] for e in resident.get("/events").json]
    assert resident.get(f"/passes/{body['id']}").json["status"] == "used"
    # Other residents do not see it.
    assert Api(client, "resident_b").get("/events").json == []
    assert Api(client, "tenant_a").get("/events").json == []


@time_machine.travel(NOW, tick=False)
def test_tampered_tokens_are_invalid(app, client, site, published):
    token = issue(client)["token"]
    forged = _raw(token)
    forged[-1] ^= 0x01  # the signature's last byte
    edited = _raw(token)
    edited[22] ^= 0x01  # a byte of the window's end: the signature no longer matches
    wrong_kid = _raw(token)
    wrong_kid[1:3] = (0xBEEF).to_bytes(2, "big")
    for bad, rule in (
        (_text(forged), "token.bad_signature"),
        (_text(edited), "token.bad_signature"),
        (_text(wrong_kid), "token.unknown_key"),
        ("HELLO-WORLD", "token.malformed"),
        ("https://example.com/not-ours", "token.malformed"),
        (token[:-10], "token.malformed"),
    ):
        answer = verify(client, site.door_credential, bad)
        assert (answer["decision"], answer["reason"]) == ("deny", "pass_invalid"), bad
        with app.app_context():
            assert db.session.get(AccessEvent, answer["event_id"]).rule == rule
    assert published == []
    # The genuine token still works after all that.
    answer = verify(client, site.door_credential, token)
    assert answer["decision"] == "grant", answer


def test_a_token_from_another_key_is_refused(client, site) -> None:
    """Signed with a key this server never made, under an id it does know."""
    with time_machine.travel(NOW, tick=False):
        body = issue(client)
        claims = passtokens.parse(body["token"])[0]
        stranger = passtokens.sign(claims, Ed25519PrivateKey.generate())
        answer = verify(client, site.door_credential, stranger)
        assert (answer["decision"], answer["reason"]) == ("deny", "pass_invalid")


def test_each_pass_denial_has_its_reason(app, client, site) -> None:
    with time_machine.travel(NOW, tick=False):
        later = issue(
            client,
            valid_from="2026-11-22T08:30:00+00:00",
            valid_until="2026-11-22T10:30:00+00:00",
        )
        once = issue(client)
        twice = issue(client, max_uses=2)
        b_pass = issue(client, "resident_b")
        revoked = issue(client)
        Api(client, "resident_a").delete(f"/passes/{revoked['id']}")

        def reason(credential: str, body: dict) -> str:
            return verify(client, credential, body["token"])["reason"]

        assert reason(site.door_credential, later) == "pass_invalid"  # not yet valid
        assert reason(site.door_credential, once) == "visitor_pass"
        assert reason(site.gate_credential, once) == "pass_used_up"
        assert reason(site.door_credential, twice) == "visitor_pass"
        assert reason(site.gate_credential, twice) == "visitor_pass"
        assert reason(site.door_credential, twice) == "pass_used_up"
        assert reason(site.door_credential, b_pass) == "not_authorized_here"
        assert reason(site.b_credential, twice) == "not_authorized_here"  # A's pass at B
        assert reason(site.other_credential, issue(client)) == "not_authorized_here"
        assert reason(site.door_credential, revoked) == "pass_revoked"
    with time_machine.travel(datetime(2026, 11, 22, 9, 0, tzinfo=UTC), tick=False):
        assert reason(site.door_credential, later) == "visitor_pass"
    with time_machine.travel(datetime(2026, 11, 22, 10, 30, tzinfo=UTC), tick=False):
        fresh = later  # used once already; expiry is checked before the count
        assert reason(site.door_credential, fresh) == "pass_expired"
    with app.app_context():
        rules = dict(
            db.session.execute(
                db.select(AccessEvent.reason, AccessEvent.rule).where(
                    AccessEvent.pass_id == later["id"]
                )
            ).all()
        )
        assert rules["pass_invalid"] == "pass.not_yet_valid"
        assert rules["pass_expired"] == "pass.expired"


def test_an_exit_scan_does_not_spend_a_use(client, site) -> None:
    with time_machine.travel(NOW, tick=False):
        body = issue(client)
        assert verify(client, site.door_credential, body["token"], direction="out")["decision"] == (
            "grant"
        )
        assert verify(client, site.door_credential, body["token"], direction="in")["decision"] == (
            "grant"
        )
        assert verify(client, site.door_credential, body["token"])["reason"] == "pass_used_up"


def test_a_tenants_pass_dies_with_the_lease(app, client, site) -> None:
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), tick=False):
        body = issue(client, "tenant_a", max_uses=5, valid_until="2026-11-28T12:00:00+00:00")
        assert verify(client, site.other_credential, body["token"])["reason"] == "visitor_pass"
        # The lease ends early; the cascade job has not run yet: the door still says no.
        with app.app_context():
            lease = db.session.scalar(db.select(Lease).where(Lease.person_id == site.tenant_person))
            lease.ends_at = lease.ended_early_at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
            db.session.commit()
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC), tick=False):
        answer = verify(client, site.other_credential, body["token"])
        assert (answer["decision"], answer["reason"]) == ("deny", "pass_revoked")
        with app.app_context():
            event = db.session.get(AccessEvent, answer["event_id"])
            assert event.rule == "pass.issuer_gone"


def test_resident_code_works_in_its_window_only(app, client, site) -> None:
    start = datetime(2026, 11, 21, 8, 30, 0, tzinfo=UTC)  # a step boundary
    with time_machine.travel(start + timedelta(seconds=3), tick=False):
        code = Api(client, "resident_a").get("/me/code").json
        assert code["valid_until"] == "2026-11-21T08:30:30+00:00" and code["step_s"] == 30
        again = Api(client, "resident_a").get("/me/code").json
        assert again["token"] == code["token"]  # stable within the step
    with time_machine.travel(start + timedelta(seconds=29), tick=False):
        answer = verify(client, site.door_credential, code["token"])
        assert (answer["decision"], answer["reason"]) == ("grant", "resident")
        assert answer["subject"]["kind"] == "resident"
        other_building = verify(client, site.other_credential, code["token"])
        assert other_building["reason"] == "not_authorized_here"
    with time_machine.travel(start + timedelta(seconds=34), tick=False):  # within the grace
        assert verify(client, site.door_credential, code["token"])["decision"] == "grant"
        newer = Api(client, "resident_a").get("/me/code").json
        assert newer["token"] != code["token"]
    with time_machine.travel(start + timedelta(seconds=36), tick=False):  # a screenshot
        answer = verify(client, site.door_credential, code["token"])
        assert (answer["decision"], answer["reason"]) == ("deny", "pass_expired")
        assert verify(client, site.door_credential, newer["token"])["decision"] == "grant"
    with time_machine.travel(start + timedelta(seconds=3), tick=False):
        assert Api(client, "staff_a").get("/me/code").status_code == 409


def test_malformed_requests_are_problems(client, site) -> None:
    headers = {"Authorization": f"Bearer {site.door_credential}"}
    for body, field in (
        ({}, "token"),
        ({"token": ""}, "token"),
        ({"token": 5}, "token"),
        ({"token": "A" * 5000}, "token"),
        ([], None),
    ):
        answer = client.post("/api/v1/verify/qr", json=body, headers=headers)
        assert answer.status_code == 422, body  # a body that parses but is not a valid request
        assert answer.mimetype == "application/problem+json"
        assert field is None or field in answer.json["errors"], answer.json
    bad_json = client.post(
        "/api/v1/verify/qr", data="{", headers=headers, content_type="application/json"
    )
    assert bad_json.status_code == 400
    deep = client.post(
        "/api/v1/verify/qr", data="[" * 100000, headers=headers, content_type="application/json"
    )
    assert deep.status_code == 400
    text = client.post("/api/v1/verify/qr", data="x", headers=headers, content_type="text/plain")
    assert text.status_code == 415
    no_auth = client.post("/api/v1/verify/qr", json={"token": "X"})
    assert no_auth.status_code == 401


def test_simultaneous_scans_of_a_single_use_pass_grant_once(app, client, site) -> None:
    """Many threads, two doors, one use: exactly one grant, on SQLite and PostgreSQL."""
    with time_machine.travel(NOW, tick=True):
        body = issue(client)
        barrier = threading.Barrier(8)

        def scan(index: int) -> str:
            credential = site.door_credential if index % 2 else site.gate_credential
            with app.test_client() as own:
                barrier.wait(timeout=10)
                return verify(own, credential, body["token"])["reason"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            reasons = list(pool.map(scan, range(8)))
    assert sorted(reasons) == ["pass_used_up"] * 7 + ["visitor_pass"]
    with app.app_context():
        assert db.session.get(VisitorPass, body["id"]).uses == 1
        grants = db.session.scalars(
            db.select(AccessEvent).where(
                AccessEvent.pass_id == body["id"], AccessEvent.decision == "grant"
            )
        ).all()
        assert len(grants) == 1
