"""Visitor passes over the API: issuing, scope, limits, tokens, QR images, revocation."""

from __future__ import annotations

import dataclasses
import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from PIL import Image
from pyzbar import pyzbar
from sqlalchemy import select

from gatekeeper import passtokens
from gatekeeper.vocabulary import PassStatus
from server.extensions import db
from server.models import AuditEntry, VisitorPass
from server.passes import images as qrimages
from server.passes.service import status_condition, status_of
from tests.factories import Api
from tests.support.passes import LEASE_END, NOW, pass_site


@pytest.fixture
def site(app):
    return pass_site(app)


def verify_token(client, credential: str, token: str, **extra):
    return client.post(
        "/api/v1/verify/qr",
        json={"token": token, **extra},
        headers={"Authorization": f"Bearer {credential}"},
    )


def test_resident_issues_a_pass_with_the_defaults(app, client, site, frozen) -> None:
    resident = Api(client, "resident_a")
    answer = resident.post("/passes", json={"guest_name": "快递 小李"})
    assert answer.status_code == 201, answer.json
    body = answer.json
    assert body["unit_id"] == site.unit_a and body["max_uses"] == 1 and body["uses"] == 0
    assert body["valid_from"] == "2026-11-21T08:30:00+00:00"
    assert body["valid_until"] == "2026-11-22T08:30:00+00:00"  # pass_default_hours = 24
    assert {p["id"] for p in body["access_points"]} == {site.door, site.gate}
    assert body["status"] == "active"
    assert body["share_url"].startswith("http://localhost/g/")
    claims = passtokens.parse(body["token"])[0]
    assert claims.kind is passtokens.TokenKind.PASS
    assert claims.not_after == datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
    assert claims.allows_access_point(site.door) and not claims.allows_access_point(site.other_door)
    # No personal data in the token: neither the guest's name nor any id in clear.
    raw = passtokens.parse(body["token"])[1]
    assert "小李".encode() not in raw and site.unit_a.encode() not in raw
    assert qrimages.version(body["token"]) <= 7
    with app.app_context():
        row = db.session.get(VisitorPass, body["id"])
        assert row.issued_by_person_id == site.resident_person
        assert db.session.query(AuditEntry).filter_by(action="pass.create").count() == 1


def test_mass_assignment_is_refused(client, site, frozen) -> None:
    resident = Api(client, "resident_a")
    for field, value in (("community_id", site.b), ("issued_by_user_id", "usr_x"), ("uses", 0)):
        answer = resident.post("/passes", json={"guest_name": "x", field: value})
        assert answer.status_code == 422, field
        assert field in answer.json["errors"]
    other_unit = resident.post("/passes", json={"guest_name": "x", "unit_id": site.unit_b})
    assert other_unit.status_code == 404
    neighbour = resident.post("/passes", json={"guest_name": "x", "unit_id": site.unit_a2})
    assert neighbour.status_code == 404


def test_limits_on_window_uses_and_doors(client, site, frozen) -> None:
    resident = Api(client, "resident_a")
    too_long = resident.post(
        "/passes", json={"guest_name": "x", "valid_until": "2026-11-28T08:31:00+00:00"}
    )
    assert too_long.status_code == 422 and "valid_until" in too_long.json["errors"]
    backwards = resident.post(
        "/passes",
        json={
            "guest_name": "x",
            "valid_from": "2026-11-22T08:00:00+08:00",
            "valid_until": "2026-11-22T07:00:00+08:00",
        },
    )
    assert backwards.status_code == 422
    naive = resident.post("/passes", json={"guest_name": "x", "valid_until": "2026-11-22T08:00"})
    assert naive.status_code == 422
    zero = resident.post("/passes", json={"guest_name": "x", "max_uses": 0})
    assert zero.status_code == 422
    foreign_door = resident.post(
        "/passes", json={"guest_name": "x", "access_point_ids": [site.other_door]}
    )
    assert foreign_door.status_code == 422 and "access_point_ids" in foreign_door.json["errors"]
    bad_plate = resident.post("/passes", json={"guest_name": "x", "plate": "浙O12345"})
    assert bad_plate.status_code == 422 and bad_plate.json["reason"] == "forbidden_letter"
    car = resident.post("/passes", json={"guest_name": "x", "plate": "浙a·12345"})
    assert car.status_code == 201 and car.json["plate"] == "浙A12345"
    week = resident.post(
        "/passes",
        json={"guest_name": "x", "valid_until": "2026-11-28T08:30:00+00:00", "max_uses": 5},
    )
    assert week.status_code == 201 and week.json["max_uses"] == 5


def test_refusals_speak_the_callers_language(client, site, frozen) -> None:
    resident = Api(client, "resident_a")
    too_long = {"guest_name": "x", "valid_until": "2026-11-28T08:31:00+00:00"}
    english = resident.post("/passes", json=too_long).json
    assert english["detail"] == "A pass lasts at most 7 days from now."
    assert english["errors"] == {"valid_until": ["A pass lasts at most 7 days from now."]}
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    chinese = resident.post("/passes", json=too_long).json
    assert chinese["detail"] == "通行证最长有效期为自现在起 7 天。"
    assert chinese["errors"] == {"valid_until": [chinese["detail"]]}
    assert chinese["title"] == english["title"]  # titles stay English
    foreign = resident.post("/passes", json={"guest_name": "x", "access_point_ids": ["ap_x"]})
    assert foreign.json["detail"] == "不是本户所在楼栋的门，也不是公共大门：ap_x。"


def test_a_tenants_pass_never_outlives_the_lease(client, site) -> None:
    with time_machine.travel(datetime(2026, 11, 29, 12, 0, tzinfo=UTC), tick=False):
        tenant = Api(client, "tenant_a")
        answer = tenant.post(
            "/passes", json={"guest_name": "x", "valid_until": "2026-12-03T12:00:00+00:00"}
        )
        assert answer.status_code == 201, answer.json
        assert answer.json["valid_until"] == LEASE_END.isoformat()
        assert {p["id"] for p in answer.json["access_points"]} == {site.other_door, site.gate}
    with time_machine.travel(LEASE_END + timedelta(hours=1), tick=False):
        tenant = Api(client, "tenant_a")
        late = tenant.post("/passes", json={"guest_name": "x"})
        assert late.status_code == 409


def test_residents_see_only_their_units_passes(client, site, frozen) -> None:
    resident, staff, officer = (Api(client, n) for n in ("resident_a", "staff_a", "officer_a"))
    mine = resident.post("/passes", json={"guest_name": "x"}).json
    staffs = staff.post("/passes", json={"guest_name": "y", "unit_id": site.unit_a2})
    assert staffs.status_code == 201
    assert [p["id"] for p in resident.get("/passes").json] == [mine["id"]]
    assert resident.get(f"/passes/{staffs.json['id']}").status_code == 404
    assert resident.get(f"/passes/{staffs.json['id']}/qr.png").status_code == 404
    assert resident.delete(f"/passes/{staffs.json['id']}").status_code == 404
    assert Api(client, "resident_b").get(f"/passes/{mine['id']}").status_code == 404
    assert Api(client, "staff_b").get(f"/passes/{mine['id']}").status_code == 404
    assert officer.get(f"/passes/{mine['id']}").status_code == 404
    by_officer = officer.post("/passes", json={"guest_name": "x", "unit_id": site.unit_a})
    assert by_officer.status_code == 403
    assert len(staff.get("/passes").json) == 2


def test_qr_images_decode_to_the_token(client, site, frozen) -> None:
    resident = Api(client, "resident_a")
    body = resident.post("/passes", json={"guest_name": "x"}).json
    png = resident.get(f"/passes/{body['id']}/qr.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    [decoded] = pyzbar.decode(Image.open(io.BytesIO(png.data)))
    assert decoded.data.decode() == body["token"]
    svg = resident.get(f"/passes/{body['id']}/qr.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data


def test_revoked_pass_is_listed_and_denied(client, site, frozen) -> None:
    resident = Api(client, "resident_a")
    body = resident.post("/passes", json={"guest_name": "x"}).json
    revoked = resident.delete(f"/passes/{body['id']}")
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked"
    assert [p["id"] for p in resident.get("/passes?status=revoked").json] == [body["id"]]
    assert resident.get("/passes?status=active").json == []
    answer = verify_token(client, site.door_credential, body["token"])
    assert (answer.json["decision"], answer.json["reason"]) == ("deny", "pass_revoked")


def test_issuing_is_rate_limited_per_account(app, client, site, frozen, monkeypatch) -> None:
    settings = dataclasses.replace(app.config["SETTINGS"], pass_rate_limit="3 per hour")
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    resident = Api(client, "resident_a")
    codes = [resident.post("/passes", json={"guest_name": "x"}).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    # Another account has its own budget.
    assert (
        Api(client, "staff_a")
        .post("/passes", json={"guest_name": "x", "unit_id": site.unit_a})
        .status_code
        == 201
    )


def test_the_sql_status_condition_selects_what_status_of_says(app, site) -> None:
    """``status_condition`` mirrors ``status_of`` (``gatekeeper.policy.pass_status``): for
    every pass of a grid and every instant around its window, the SQL of each status selects
    exactly the passes whose Python status it is."""
    start, end = NOW, NOW + timedelta(hours=6)
    second = timedelta(seconds=1)
    with app.app_context():
        rows = [
            VisitorPass(
                community_id=site.a,
                unit_id=site.unit_a,
                guest_name="grid",
                valid_from=start,
                valid_until=end,
                uses=uses,
                max_uses=max_uses,
                revoked_at=revoked_at,
            )
            for (uses, max_uses), revoked_at in itertools.product(
                [(0, 1), (1, 1), (2, 1), (2, 5), (5, 5)], [None, start - second, end + second]
            )
        ]
        db.session.add_all(rows)
        db.session.commit()
        ids = [row.id for row in rows]
        instants = [start - second, start, start + second, end - second, end, end + second]
        for at in instants:
            seen: dict[PassStatus, set[str]] = {}
            for status in PassStatus:
                selected = set(
                    db.session.scalars(
                        select(VisitorPass.id).where(
                            VisitorPass.id.in_(ids), status_condition(status, at)
                        )
                    )
                )
                expected = {row.id for row in rows if status_of(row, at) is status}
                assert selected == expected, (status, at)
                seen[status] = selected
            assert set().union(*seen.values()) == set(ids)  # every pass has one status
            assert sum(map(len, seen.values())) == len(ids)
        assert {status_of(row, at) for row in rows for at in instants} == set(PassStatus)
