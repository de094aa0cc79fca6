"""What the officer sees: the alert console, alert pages, event search and its CSV, statistics."""

from __future__ import annotations

import csv
import dataclasses
import html as markup
import io
import json
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from flask import Flask
from flask_babel import refresh

from gatekeeper import faces
from gatekeeper.vocabulary import (
    AlertStatus,
    AlertType,
    CredentialType,
    Decision,
    Reason,
    Severity,
)
from server.access import events as event_service
from server.access import snapshots
from server.alerts import service as alerts
from server.alerts import summaries
from server.core import crypto
from server.extensions import db
from server.models import AccessEvent, Alert, AlertHistory, Community, Device, User, UserRole
from server.web import drawings
from tests import factories
from tests.factories import Api
from tests.support.pages import login, logout
from tests.support.passes import build_pass_site

# 2026-11-20 21:40 in Shanghai.
EVENING = datetime(2026, 11, 20, 13, 40, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class OfficerSite:
    a: str
    b: str
    door: str  # building A1's door
    gate: str  # A's perimeter gate
    other_door: str  # building A2's door
    door_b: str
    owner: str  # 王小明, A1-101
    officer_a: str


@pytest.fixture
def site(app: Flask) -> OfficerSite:
    with app.app_context():
        base = build_pass_site()
        officer_b = factories.user(
            UserRole.OFFICER, communities=[db.session.get(Community, base.b)], username="officer_b"
        )
        assert officer_b.username == "officer_b"
        officer_a = db.session.scalar(db.select(User).where(User.username == "officer_a"))
        built = OfficerSite(
            a=base.a,
            b=base.b,
            door=base.door,
            gate=base.gate,
            other_door=base.other_door,
            door_b=base.door_b,
            owner=base.resident_person,
            officer_a=officer_a.id,
        )
        db.session.remove()
    return built


def _event(
    community_id: str,
    point_id: str | None,
    at: datetime,
    *,
    decision: Decision = Decision.GRANT,
    reason: Reason = Reason.RESIDENT,
    credential: CredentialType = CredentialType.FACE,
    person_id: str | None = None,
    direction: str | None = "in",
    **values,
) -> str:
    row = AccessEvent(
        community_id=community_id,
        access_point_id=point_id,
        occurred_at=at,
        credential_type=credential,
        decision=decision,
        reason=reason,
        person_id=person_id,
        direction=direction,
        **values,
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def _alert(community_id: str, severity: Severity, summary: str, **values) -> str:
    row = alerts.raise_alert(
        community_id=community_id,
        type=values.pop("type", AlertType.STRANGER),
        severity=severity,
        summary=summary,
        **values,
    )
    db.session.commit()
    return row.id


def _order(html: str, *needles: str) -> list[int]:
    return [html.index(needle) for needle in needles]


# The console ----------------------------------------------------------------------------------


def test_console_shows_the_covered_alerts_most_severe_first(client, site, ctx) -> None:
    low = _alert(site.a, Severity.LOW, "Door 3 battery low", type=AlertType.TAMPER)
    critical = _alert(site.a, Severity.CRITICAL, "Panic button pressed", type=AlertType.PANIC)
    high = _alert(
        site.a,
        Severity.HIGH,
        "Unknown person seen 3 times",
        access_point_id=site.gate,
        evidence={"event_ids": [], "snapshots": []},
    )
    acknowledged = _alert(site.a, Severity.CRITICAL, "Door forced", type=AlertType.DOOR_FORCED)
    db.session.get(Alert, acknowledged).status = AlertStatus.ACKNOWLEDGED
    db.session.commit()
    other = _alert(site.b, Severity.CRITICAL, "Community B panic", type=AlertType.PANIC)

    login(client, "officer_a")
    home = client.get("/")
    assert "/officer" in home.text and "4 open alerts" in home.text
    page = client.get("/officer")
    assert page.status_code == 200
    html = page.text
    # Unresolved first, then the most severe, then the newest.
    positions = _order(html, *(f'id="alert-{i}"' for i in (acknowledged, critical, high, low)))
    assert positions == sorted(positions)
    assert other not in html and "Community B panic" not in html
    assert "North gate" in html  # where the stranger was seen
    card = html[html.index(f'id="alert-{critical}"') - 200 : html.index(f'id="alert-{critical}"')]
    assert "flashing" in card
    ack_card = html[html.index(f'id="alert-{acknowledged}"') - 200 :][:300]
    assert "flashing" not in ack_card and "status-acknowledged" in ack_card
    assert 'data-stream="/api/v1/alerts/stream"' in html
    assert "officer.js" in html
    assert client.get("/static/officer.js").status_code == 200


def test_console_and_alert_pages_are_the_officers(client, site, ctx) -> None:
    alert = _alert(site.a, Severity.HIGH, "Unknown person")
    for username in ("resident_a", "staff_a", "officer_b"):
        login(client, username)
        assert client.get(f"/alerts/{alert}").status_code == 404, username
        if username != "officer_b":
            assert client.get("/officer").status_code == 404, username
        logout(client)
    login(client, "officer_b")
    assert alert not in client.get("/officer").text
    logout(client)
    login(client, "admin")
    assert alert in client.get("/officer").text
    assert client.get(f"/alerts/{alert}").status_code == 200


def test_residents_and_other_officers_find_no_search_or_statistics(client, site, ctx) -> None:
    login(client, "resident_a")
    for path in ("/events/search", "/stats", f"/events/search?community_id={site.a}"):
        assert client.get(path).status_code == 404, path
    logout(client)
    login(client, "officer_b")
    assert client.get(f"/events/search?community_id={site.a}").status_code == 404
    assert client.get(f"/stats?community_id={site.a}").status_code == 404
    own = client.get("/events/search")
    assert own.status_code == 200 and "Events · Community B" in own.text


# One alert ------------------------------------------------------------------------------------


def test_alert_page_shows_history_evidence_and_where(client, app, site, ctx) -> None:
    seen_at_gate = _event(
        site.a,
        site.gate,
        EVENING,
        decision=Decision.DENY,
        reason=Reason.UNKNOWN_FACE,
        template_encrypted=b"x",
    )
    seen_at_door = _event(
        site.a,
        site.other_door,
        EVENING + timedelta(minutes=5),
        decision=Decision.DENY,
        reason=Reason.UNKNOWN_FACE,
    )
    event = db.session.get(AccessEvent, seen_at_gate)
    snapshots.store(event, b"\xff\xd8 not really a jpeg")
    db.session.commit()
    alert = _alert(
        site.a,
        Severity.HIGH,
        "Unknown person seen 2 times at 2 doors since 21:40",
        access_point_id=site.gate,
        evidence={
            "event_ids": [seen_at_gate, seen_at_door],
            "snapshots": [f"/api/v1/events/{seen_at_gate}/snapshot"],
        },
    )
    db.session.add(
        AlertHistory(
            community_id=site.a,
            alert_id=alert,
            action="acknowledged",
            status=AlertStatus.ACKNOWLEDGED,
            by_user_id=site.officer_a,
            note="Watching camera 2",
        )
    )
    db.session.commit()

    login(client, "officer_a")
    page = client.get(f"/alerts/{alert}")
    assert page.status_code == 200
    html = page.text
    assert "Unknown person seen 2 times at 2 doors since 21:40" in html
    assert "raised" in html and "the system" in html
    assert "officer_a" in html and "Watching camera 2" in html
    # The evidence: a face crop where one was kept, a placeholder where none was.
    assert f'src="/api/v1/events/{seen_at_gate}/snapshot"' in html
    assert "No picture kept" in html
    assert "2026-11-20 21:40" in html and "2026-11-20 21:45" in html
    assert "Face not recognised" in html
    assert client.get(f"/api/v1/events/{seen_at_gate}/snapshot").status_code == 200
    # The map: the community's buildings, the gate and the door the face was seen at in red.
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'class="site-map"' in svg
    assert f'class="ap hit" data-access-point="{site.gate}"' in svg
    assert f'class="ap hit" data-access-point="{site.other_door}"' in svg
    assert f'class="ap" data-access-point="{site.door}"' in svg
    assert ">A1<" in svg and ">A2<" in svg and "North gate" in svg
    # Links to the search, prefilled around the alert's time.
    assert "/events/search?" in html and f"access_point_id={site.gate}" in html
    since = re.search(r'href="(/events/search\?[^"]*access_point_id[^"]*)"', html).group(1)
    found = client.get(since.replace("&amp;", "&"))
    assert found.status_code == 200 and seen_at_gate in found.text


def test_alert_of_a_device_marks_its_door(client, site, ctx) -> None:
    device = db.session.scalar(db.select(Device).where(Device.access_point_id == site.door))
    alert = _alert(
        site.a,
        Severity.MEDIUM,
        "Door terminal offline",
        type=AlertType.DEVICE_OFFLINE,
        device_id=device.id,
    )
    login(client, "officer_a")
    html = client.get(f"/alerts/{alert}").text
    assert "Device offline" in html and f"device {device.name}" in html
    assert f'class="ap hit" data-access-point="{site.door}"' in html
    assert "This alert names no access events." in html
    assert "flashing" not in html.split('id="history"')[0]  # medium: no flash


# Event search ---------------------------------------------------------------------------------


@pytest.fixture
def history(site, ctx) -> dict[str, str]:
    """Events of A (and one of B) at known times, doors, decisions and credentials."""
    return {
        "owner_face": _event(site.a, site.door, EVENING, person_id=site.owner),
        "owner_card": _event(
            site.a,
            site.gate,
            EVENING + timedelta(hours=1),
            credential=CredentialType.CARD,
            reason=Reason.CARD,
            person_id=site.owner,
        ),
        "stranger": _event(
            site.a,
            site.gate,
            EVENING + timedelta(hours=2),
            decision=Decision.DENY,
            reason=Reason.UNKNOWN_FACE,
            details={"detail": "=HYPERLINK(evil)"},
        ),
        "yesterday": _event(
            site.a,
            site.other_door,
            EVENING - timedelta(days=1),
            decision=Decision.DENY,
            reason=Reason.OUTSIDE_SCHEDULE,
            credential=CredentialType.CARD,
        ),
        "in_b": _event(site.b, site.door_b, EVENING),
    }


def _found(html: str, events: dict[str, str]) -> set[str]:
    return {name for name, ident in events.items() if f'data-event="{ident}"' in html}


def test_event_search_filters(client, site, history) -> None:
    login(client, "officer_a")
    everything = client.get("/events/search")
    assert everything.status_code == 200
    assert _found(everything.text, history) == {"owner_face", "owner_card", "stranger", "yesterday"}
    cases = {
        f"access_point_id={site.gate}": {"owner_card", "stranger"},
        "decision=deny": {"stranger", "yesterday"},
        "reason=outside_schedule": {"yesterday"},
        "credential_type=card": {"owner_card", "yesterday"},
        f"person_id={site.owner}": {"owner_face", "owner_card"},
        # Local times in Shanghai: from 22:00 to 23:00 on the 20th.
        "since=2026-11-20T22:00&until=2026-11-20T23:00": {"owner_card"},
        "since=2026-11-20T00:00": {"owner_face", "owner_card", "stranger"},
        "decision=grant&credential_type=face": {"owner_face"},
    }
    for query, expected in cases.items():
        page = client.get(f"/events/search?community_id={site.a}&{query}")
        assert page.status_code == 200, query
        assert _found(page.text, history) == expected, query


def test_officers_see_masked_names_staff_full_ones(client, site, history) -> None:
    login(client, "officer_a")
    page = client.get(f"/events/search?person_id={site.owner}").text
    assert "王*明" in page and site.owner in page and "王小明" not in page
    assert "/people/" not in page
    logout(client)
    login(client, "staff_a")
    page = client.get(f"/events/search?person_id={site.owner}").text
    assert "王小明" in page and f"/people/{site.owner}" in page


def test_event_search_finds_a_car_by_plate_and_exports_it(client, site, ctx) -> None:
    seen = [
        _event(
            site.a,
            site.gate,
            EVENING + timedelta(minutes=n),
            credential=CredentialType.PLATE,
            reason=Reason.RESIDENT_VEHICLE,
            details={"plate": "浙A12345"},
        )
        for n in range(2)
    ]
    _event(
        site.a,
        site.gate,
        EVENING,
        credential=CredentialType.PLATE,
        reason=Reason.RESIDENT_VEHICLE,
        details={"plate": "浙B99999"},
    )
    login(client, "officer_a")
    page = client.get(f"/events/search?community_id={site.a}&plate=浙a 12345")
    assert page.status_code == 200
    assert _found(page.text, dict(enumerate(seen))) == {0, 1}
    assert page.text.count('data-event="') == 2
    assert 'value="浙a 12345"' in page.text  # the field keeps what was typed
    link = re.search(r'id="csv-link" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    rows = _rows(client.get(link))
    assert [row["event_id"] for row in rows] == list(reversed(seen))
    assert {row["plate"] for row in rows} == {"浙A12345"}


def test_event_search_refuses_bad_filters(client, site, history) -> None:
    login(client, "officer_a")
    for query, field in (
        ("since=yesterday", "since-error"),
        ("decision=maybe", "decision-error"),
        (f"access_point_id={site.door_b}", "access_point_id-error"),
        ("since=2026-11-21T10:00&until=2026-11-21T09:00", "until-error"),
        ("plate=··", "plate-error"),
    ):
        page = client.get(f"/events/search?{query}")
        assert page.status_code == 422, query
        assert f'id="{field}"' in page.text, query
        assert _found(page.text, history) == set(), query


def test_event_search_pages_through_older_events(client, site, ctx) -> None:
    made = [
        _event(site.a, site.door, EVENING - timedelta(minutes=n), credential=CredentialType.CARD)
        for n in range(53)
    ]
    login(client, "officer_a")
    first = client.get("/events/search").text
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(older).text
    seen = {i for i in made if f'data-event="{i}"' in first}
    rest = {i for i in made if f'data-event="{i}"' in second}
    assert len(seen) == 50 and len(rest) == 3 and seen | rest == set(made)


# CSV export -----------------------------------------------------------------------------------


def _rows(answer) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    assert answer.data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, for Excel
    return list(csv.DictReader(io.StringIO(answer.data.decode("utf-8-sig"), newline="")))


def test_csv_export_follows_the_search(client, site, history) -> None:
    login(client, "officer_a")
    page = client.get(f"/events/search?community_id={site.a}&decision=deny").text
    link = re.search(r'id="csv-link" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert link.startswith("/api/v1/events.csv?")
    rows = _rows(client.get(link))
    assert [row["event_id"] for row in rows] == [history["stranger"], history["yesterday"]]
    stranger = rows[0]
    assert stranger["occurred_at"] == "2026-11-20T23:40:00+08:00"
    assert datetime.fromisoformat(stranger["occurred_at"]) == EVENING + timedelta(hours=2)
    assert stranger["access_point"] == "North gate" and stranger["decision"] == "deny"
    assert stranger["reason"] == "unknown_face" and stranger["community"] == "Community A"
    assert stranger["detail"] == "'=HYPERLINK(evil)"  # no formula in a spreadsheet
    assert list(rows[0]) == list(event_service_columns())

    everything = _rows(client.get("/api/v1/events.csv"))
    assert {row["event_id"] for row in everything} == set(history.values()) - {history["in_b"]}
    owner = next(row for row in everything if row["event_id"] == history["owner_face"])
    assert owner["name"] == "王*明" and owner["person_id"] == site.owner
    assert "王小明" not in client.get("/api/v1/events.csv").text


def event_service_columns() -> tuple[str, ...]:
    from server.api.events import CSV_COLUMNS

    return CSV_COLUMNS


def test_csv_export_is_scoped(client, site, history) -> None:
    staff = Api(client, "staff_a")
    rows = _rows(staff.get(f"/events.csv?person_id={site.owner}"))
    assert {row["name"] for row in rows} == {"王小明"}
    officer_b = _rows(Api(client, "officer_b").get("/events.csv"))
    assert [row["event_id"] for row in officer_b] == [history["in_b"]]
    assert _rows(Api(client, "officer_b").get(f"/events.csv?community_id={site.a}")) == []
    assert Api(client, "resident_a").get("/events.csv").status_code == 404
    assert Api(client, "officer_a").get("/events.csv?reason=nonsense").status_code == 422


def test_csv_export_opens_in_excel(client, site, ctx) -> None:
    """UTF-8 with a BOM and CRLF lines, the plate of a car event, the masked name of whom an
    event is about, and no cell a spreadsheet would run as a formula."""
    car = _event(
        site.a,
        site.gate,
        EVENING,
        credential=CredentialType.PLATE,
        reason=Reason.RESIDENT_VEHICLE,
        person_id=site.owner,
        details={"plate": "浙A12345", "confidence": 0.97},
    )
    face = _event(
        site.a,
        site.door,
        EVENING - timedelta(minutes=1),
        person_id=site.owner,
        details={"detail": "+1 then @SUM(A1)"},
    )
    unknown = _event(
        site.a,
        site.gate,
        EVENING - timedelta(minutes=2),
        decision=Decision.DENY,
        reason=Reason.UNKNOWN_PLATE,
        credential=CredentialType.PLATE,
        details={"plate": "沪B99999", "detail": "-2+3"},
    )
    staff = Api(client, "staff_a").get("/events.csv")
    body = staff.data
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert text.startswith("event_id,occurred_at,") and text.count("\r\n") == 4
    assert all(line.endswith("\r") for line in text.split("\n")[:-1])
    rows = {row["event_id"]: row for row in _rows(staff)}
    assert set(rows) == {car, face, unknown}
    assert rows[car]["plate"] == "浙A12345" and rows[car]["person"] == "王*明"
    assert rows[car]["name"] == "王小明"  # staff read names in full; person is masked for all
    assert rows[car]["occurred_at"] == "2026-11-20T21:40:00+08:00"
    assert rows[face]["plate"] == "" and rows[face]["person"] == "王*明"
    assert rows[face]["detail"] == "'+1 then @SUM(A1)"
    assert rows[unknown]["plate"] == "沪B99999" and rows[unknown]["person"] == ""
    assert rows[unknown]["detail"] == "'-2+3"
    officer = {row["event_id"]: row for row in _rows(Api(client, "officer_a").get("/events.csv"))}
    assert officer[car]["name"] == officer[car]["person"] == "王*明"


def test_csv_header_follows_accept_language(client, site, history) -> None:
    api = Api(client, "officer_a")
    english = _rows(api.get("/events.csv"))
    assert list(english[0]) == list(event_service_columns())
    api.headers["Accept-Language"] = "zh-CN"
    refresh()  # the test's app context (ctx) would keep the first request's language
    chinese = _rows(api.get("/events.csv"))
    header = list(chinese[0])
    assert header[0] == "事件编号" and "车牌" in header and len(header) == len(english[0])
    # The same values; only the reason in words is in the request's language.
    same = [key for key in event_service_columns() if key != "reason_text"]
    assert [[row[k] for k in same] for row in english] == [
        [row[header[i]] for i, k in enumerate(event_service_columns()) if k != "reason_text"]
        for row in chinese
    ]


def test_events_api_takes_the_new_filters(client, site, history) -> None:
    officer = Api(client, "officer_a")
    ids = {e["id"] for e in officer.get("/events?credential_type=card").json}
    assert ids == {history["owner_card"], history["yesterday"]}
    ids = {e["id"] for e in officer.get(f"/events?person_id={site.owner}&reason=card").json}
    assert ids == {history["owner_card"]}
    assert officer.get(f"/events?community_id={site.b}").json == []
    assert officer.get("/events?credential_type=smell").status_code == 422


# Where else was this face seen ------------------------------------------------------------------


def test_where_else_was_this_face_seen(client, site, history, monkeypatch) -> None:
    asked: list[str] = []

    def similar_events(event, *, limit=50):
        asked.append(event.id)
        rows = [db.session.get(AccessEvent, history[name]) for name in ("owner_face", "in_b")]
        return [(rows[0], 0.312), (rows[1], 0.2)]

    monkeypatch.setattr(event_service, "similar_events", similar_events)
    login(client, "officer_a")
    page = client.get(f"/events/search?community_id={site.a}").text
    assert f"/events/search?similar_to={history['stranger']}" in page
    answer = client.get(f"/events/search?similar_to={history['stranger']}")
    assert answer.status_code == 200
    assert "Where else was this face seen" in answer.text
    assert _found(answer.text, history) == {"stranger", "owner_face"}  # not B's event
    assert "0.312" in answer.text
    api = Api(client, "officer_a").get(f"/events/{history['stranger']}/similar")
    assert api.status_code == 200
    assert [(e["id"], e["distance"]) for e in api.json] == [(history["owner_face"], 0.312)]
    assert asked == [history["stranger"], history["stranger"]]
    assert Api(client, "officer_b").get(f"/events/{history['stranger']}/similar").status_code == 404


def test_where_else_with_the_face_matcher(client, site, history) -> None:
    """The strangers' matcher behind the page: close unknown faces, nearest first."""
    base = np.zeros(128, dtype=np.float32)
    base[0] = 1.0

    def template(shift: float) -> bytes:
        vector = base.copy()
        vector[1] = shift
        return crypto.encrypt(faces.template_to_bytes(vector))

    first = _event(
        site.a,
        site.gate,
        EVENING,
        decision=Decision.DENY,
        reason=Reason.UNKNOWN_FACE,
        template_encrypted=template(0.0),
    )
    close = _event(
        site.a,
        site.other_door,
        EVENING + timedelta(minutes=9),
        decision=Decision.DENY,
        reason=Reason.UNKNOWN_FACE,
        template_encrypted=template(0.1),
    )
    far = _event(
        site.a,
        site.door,
        EVENING + timedelta(minutes=5),
        decision=Decision.DENY,
        reason=Reason.UNKNOWN_FACE,
        template_encrypted=template(0.9),
    )
    login(client, "officer_a")
    page = client.get(f"/events/search?similar_to={first}").text
    assert f'data-event="{close}"' in page and f'data-event="{far}"' not in page
    assert "0.100" in page and "1 other sighting" in page
    # A known person's face: their other face events, without a distance.
    page = client.get(f"/events/search?similar_to={history['owner_face']}").text
    assert "known person" in page and "0 other sightings" in page
    assert f'data-event="{history["owner_card"]}"' not in page


# Statistics -----------------------------------------------------------------------------------


def test_statistics_draw_events_by_hour_and_alerts_by_day(client, site, history) -> None:
    for n in range(3):
        _event(site.a, site.gate, EVENING + timedelta(minutes=n), credential=CredentialType.CARD)
    for day in (0, 0, 1):
        alert = alerts.raise_alert(
            community_id=site.a, type=AlertType.STRANGER, severity=Severity.HIGH, summary="x"
        )
        alert.created_at = EVENING - timedelta(days=day)
    alerts.raise_alert(
        community_id=site.a, type=AlertType.PANIC, severity=Severity.CRITICAL, summary="y"
    ).created_at = EVENING
    db.session.commit()

    login(client, "officer_a")
    page = client.get(f"/stats?community_id={site.a}&from=2026-11-14&to=2026-11-20")
    assert page.status_code == 200
    html = page.text
    assert 'class="heat-map"' in html and 'class="bar-chart"' in html
    # 21:40 in Shanghai: the gate had 3 card events and nothing else that hour.
    assert "North gate, 21:00-21:59: 3 events" in html
    assert "North gate, 23:00-23:59: 1 event<" in html  # the stranger
    assert "A door, 21:00-21:59: 1 event<" in html
    assert "A2 door, 21:00-21:59: 1 event<" in html  # the day before
    assert "2026-11-20 · stranger: 2" in html and "2026-11-19 · stranger: 1" in html
    assert "2026-11-20 · panic button: 1" in html  # the type in words
    assert 'data-type="panic"' in html
    assert "Community B" not in html.split("</nav>")[-1]

    default = client.get("/stats")
    assert default.status_code == 200 and 'class="heat-map"' in default.text
    assert client.get("/stats?from=2026-11-20&to=2026-11-01").status_code == 422
    assert client.get("/stats?from=2026-01-01&to=2026-12-31").status_code == 422
    logout(client)
    login(client, "staff_a")
    assert client.get("/stats?from=2026-11-14&to=2026-11-20").status_code == 200


# In Chinese -----------------------------------------------------------------------------------

ZH = {"Accept-Language": "zh-CN"}
STRANGER_EN = "Unknown person seen 3 times at 2 doors since 21:40"
STRANGER_ZH = "陌生人自 21:40 起在 2 个门出现 3 次"


def test_officer_pages_in_chinese(client, app, site) -> None:
    """The pages, their script's words and the alerts' summaries in the reader's language;
    the stored summary (what the API, MQTT and webhooks send) stays English."""
    with app.app_context():
        _event(site.a, site.gate, EVENING, decision=Decision.DENY, reason=Reason.UNKNOWN_FACE)
        stranger = _alert(
            site.a,
            Severity.HIGH,
            summaries.summary(
                summaries.N_(
                    "Unknown person seen %(count)s times at %(doors)s doors since %(since)s"
                ),
                count=3,
                doors=2,
                since="21:40",
            ),
            access_point_id=site.gate,
        )
        _alert(site.a, Severity.LOW, "Door 3 battery low", type=AlertType.TAMPER)  # plain text
        alerts.raise_alert(
            community_id=site.a, type=AlertType.PANIC, severity=Severity.CRITICAL, summary="y"
        ).created_at = EVENING
        db.session.commit()
        db.session.remove()
    login(client, "officer_a")

    console = client.get("/officer", headers=ZH).text
    assert '<html lang="zh-CN">' in console and "<h1>告警台</h1>" in console
    assert STRANGER_ZH in console and f">{STRANGER_EN}<" not in console
    assert f'data-summary="{STRANGER_EN}"' in console  # what the stream's summary is
    assert "Door 3 battery low" in console  # no text to translate: the stored summary
    assert 'sev-pill" data-field="severity">高<' in console
    assert 'data-field="status">待处理<' in console and ">陌生人<" in console
    texts = _script_texts(console)
    assert texts["types"]["panic"] == "紧急求助" and texts["statuses"]["open"] == "待处理"
    assert texts["alarm"]["high"] == "高级告警：{summary}" and texts["live"] == "实时"
    assert 'data-summary-url="/alerts/ALERT_ID/summary"' in console
    communities = json.loads(markup.unescape(re.search(r'data-communities="([^"]*)"', console)[1]))
    assert communities[site.a]["tz_labels"] == {"480": "CST"}  # as local_time writes it

    answer = client.get(f"/alerts/{stranger}/summary", headers=ZH)
    assert answer.json == {"summary": STRANGER_ZH, "source": STRANGER_EN}
    assert client.get(f"/alerts/{stranger}/summary").json["summary"] == STRANGER_EN
    api = Api(client, "officer_a")
    answer = client.get(f"/api/v1/alerts/{stranger}", headers={**api.headers, **ZH})
    assert answer.json["summary"] == STRANGER_EN and "summary_text" not in answer.json["evidence"]

    page = client.get(f"/alerts/{stranger}", headers=ZH).text
    assert "<h2>处理记录</h2>" in page and ">已触发<" in page and "系统" in page
    assert STRANGER_ZH in page and "确认" in page and "您采取的措施或看到的情况" in page

    stats = client.get(f"/stats?community_id={site.a}&from=2026-11-14&to=2026-11-20", headers=ZH)
    assert "统计 · Community A" in stats.text and "2026-11-20 · 紧急求助: 1" in stats.text
    assert "North gate，21:00-21:59：1 次" in stats.text

    search = client.get(f"/events/search?community_id={site.a}", headers=ZH).text
    assert "全部门禁点" in search and "1 条事件，最新的在前" in search and "未知人脸" in search

    english = client.get("/officer").text
    assert "data-summary-url" not in english  # the stream's summaries are English already
    assert STRANGER_EN in english and _script_texts(english)["sound_on"] == "Sound on"


def _script_texts(html: str) -> dict:
    """The words the page gives static/officer.js."""
    block = re.search(r'<script type="application/json" id="officer-texts">(.*?)</script>', html)
    return json.loads(block.group(1))


# The pictures themselves ------------------------------------------------------------------------


def test_site_map_marks_the_highlighted_access_points() -> None:
    plan = drawings.SiteMap(
        title="Community <A>",
        perimeter=(drawings.MapPoint("ap_gate", "North gate", "gate"),),
        blocks=(
            drawings.MapBlock("3号楼", (drawings.MapPoint("ap_d", "3号楼1单元", "door"),)),
            drawings.MapBlock("Kindergarten", (), dashed=True),
        ),
        highlighted=frozenset({"ap_d"}),
    )
    svg = str(drawings.site_map(plan))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Community &lt;A&gt;" in svg
    assert 'class="ap hit" data-access-point="ap_d"' in svg
    assert 'class="ap" data-access-point="ap_gate"' in svg
    assert 'class="block hit"' in svg and "no access point" in svg
    assert "marked: 3号楼1单元" in svg


def test_heat_map_and_bar_chart() -> None:
    heat = str(drawings.heat_map("Events", [("Gate", [0] * 21 + [5, 0, 1])]))
    assert heat.count('class="cell"') == 24
    assert 'data-count="5"' in heat and "5 events in the busiest hour" in heat
    days = [date(2026, 11, 19), date(2026, 11, 20)]
    bars = str(
        drawings.bar_chart(
            "Alerts", days, [("stranger", [1, 2]), ("panic", [0, 1])], {"stranger": "#000"}
        )
    )
    assert bars.count('class="bar"') == 3
    assert "2026-11-20 · stranger: 2" in bars and 'fill="#000"' in bars
    assert "No alerts in this period." in str(drawings.bar_chart("Alerts", days, [], {}))
