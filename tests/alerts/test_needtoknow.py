"""Need to know: the identity behind a welfare alert, opened behind a stated purpose and
recorded; reads of personal data recorded; the audit viewer, its API and CSV for supervisors."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, PersonRole, Severity
from server.alerts import service as alerts
from server.core import crypto
from server.extensions import db
from server.models import AuditEntry, Community, DataRead, FaceTemplate, User, UserRole
from tests import factories
from tests.factories import Api
from tests.support.pages import csrf, login

PHOTO = b"\xff\xd8\xff\xe0" + b"enrolment-photo" * 4  # stands in for a kept JPEG
GUARDIAN_PHONE = "13800000001"


@dataclasses.dataclass(frozen=True)
class Site:
    a: str
    b: str
    elder: str
    guardian: str
    child: str
    wandering: str  # the elder's elder_wandering alert
    child_alert: str  # the child's child_wandering alert
    panic: str  # an alert with nobody behind it
    other_alert: str  # community B's welfare alert


def _alert(community_id: str, type_: AlertType, summary: str, person_id: str | None) -> str:
    row = alerts.raise_alert(
        community_id=community_id,
        type=type_,
        severity=Severity.HIGH,
        summary=summary,
        evidence={"person_id": person_id} if person_id else {},
    )
    db.session.flush()
    return row.id


@pytest.fixture
def site(app: Flask) -> Site:
    with app.app_context():
        w = factories.world()
        w.a.name = "幸福小区"
        elder = factories.person(w.a, "赵秀英", phone="13900000009", wander_risk=True)
        factories.membership(elder, PersonRole.ELDER, unit_of=w.unit_a)
        guardian = factories.person(w.a, "赵强", phone=GUARDIAN_PHONE)
        elder.guardians.append(guardian)
        child = factories.person(w.a, "钱小宝")
        db.session.add(
            FaceTemplate(
                community_id=w.a.id,
                person_id=elder.id,
                template_encrypted=crypto.encrypt(b"\0" * 512),
                model="test",
                photo_encrypted=crypto.encrypt(PHOTO),
            )
        )
        other = factories.person(w.b, "孙大爷")
        supervisor = factories.user(UserRole.STAFF, communities=[w.a], username="super_a")
        supervisor.supervisor = True
        factories.user(UserRole.OFFICER, communities=[w.b], username="officer_b")
        built = Site(
            a=w.a.id,
            b=w.b.id,
            elder=elder.id,
            guardian=guardian.id,
            child=child.id,
            wandering=_alert(w.a.id, AlertType.ELDER_WANDERING, "Elder 赵*英 went out", elder.id),
            child_alert=_alert(w.a.id, AlertType.CHILD_WANDERING, "Child 钱*宝 went out", child.id),
            panic=_alert(w.a.id, AlertType.PANIC, "Panic button pressed", None),
            other_alert=_alert(w.b.id, AlertType.ELDER_INACTIVE, "Elder 孙*爷 not seen", other.id),
        )
        db.session.commit()
        db.session.remove()
    return built


def _reads(**where) -> list[DataRead]:
    query = select(DataRead).order_by(DataRead.at, DataRead.id)
    for name, value in where.items():
        query = query.where(getattr(DataRead, name) == value)
    return list(db.session.scalars(query))


def _open(client, alert_id: str, purpose: str) -> None:
    page = client.get(f"/alerts/{alert_id}")
    answer = client.post(
        f"/alerts/{alert_id}/identity", data={"purpose": purpose, "csrf_token": csrf(page.text)}
    )
    assert answer.status_code == 302, answer.text


def test_an_officer_sees_masked_names_until_stating_a_purpose(client, site, ctx, frozen) -> None:
    login(client, "officer_a")
    page = client.get(f"/alerts/{site.wandering}")
    assert page.status_code == 200
    assert "赵*英" in page.text and 'id="identity-form"' in page.text
    assert "赵秀英" not in page.text and GUARDIAN_PHONE not in page.text
    assert "data:image" not in page.text
    assert _reads() == []

    _open(client, site.wandering, "welfare_check")
    page = client.get(f"/alerts/{site.wandering}")
    assert "赵秀英" in page.text and "赵强" in page.text and GUARDIAN_PHONE in page.text
    assert "A1 · 101" in page.text
    assert 'src="data:image/jpeg;base64,' in page.text
    (read,) = _reads()
    assert (read.what, read.purpose, read.alert_id) == (
        "welfare_view",
        "welfare_check",
        site.wandering,
    )
    assert (read.actor, read.actor_role, read.person_id) == ("officer_a", "officer", site.elder)
    assert read.community_id == site.a

    # Only this alert is open: another person's alert stays masked ...
    child = client.get(f"/alerts/{site.child_alert}")
    assert "钱*宝" in child.text and "钱小宝" not in child.text
    # ... and only for a while.
    frozen.shift(timedelta(minutes=16))
    later = client.get(f"/alerts/{site.wandering}")
    assert "赵秀英" not in later.text and "赵*英" in later.text
    assert len(_reads()) == 1


def test_an_alert_with_nobody_behind_it_has_no_identity(client, site, ctx) -> None:
    login(client, "officer_a")
    page = client.get(f"/alerts/{site.panic}")
    assert page.status_code == 200 and 'id="identity"' not in page.text
    answer = client.post(
        f"/alerts/{site.panic}/identity",
        data={"purpose": "investigation", "csrf_token": csrf(page.text)},
    )
    assert answer.status_code == 409
    bad = client.post(
        f"/alerts/{site.wandering}/identity",
        data={"purpose": "curiosity", "csrf_token": csrf(page.text)},
    )
    assert bad.status_code == 422
    assert _reads() == []


def test_an_officer_of_another_community_gets_404(client, site, ctx) -> None:
    login(client, "officer_b")
    page = client.get(f"/alerts/{site.other_alert}")
    assert page.status_code == 200
    assert client.get(f"/alerts/{site.wandering}").status_code == 404
    answer = client.post(
        f"/alerts/{site.wandering}/identity",
        data={"purpose": "welfare_check", "csrf_token": csrf(page.text)},
    )
    assert answer.status_code == 404
    api = Api(client, "officer_b")
    found = api.post(f"/alerts/{site.wandering}/identity", json={"purpose": "welfare_check"})
    assert found.status_code == 404
    assert _reads() == []


def test_the_api_reveals_with_a_purpose_and_records_it(client, site, ctx) -> None:
    officer = Api(client, "officer_a")
    answer = officer.post(f"/alerts/{site.wandering}/identity", json={"purpose": "investigation"})
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["name"] == "赵秀英" and body["units"] == ["A1 · 101"]
    assert body["guardians"] == [{"name": "赵强", "phone": GUARDIAN_PHONE}]
    assert body["photo"].startswith("data:image/jpeg;base64,")
    assert answer.headers["Cache-Control"] == "no-store"
    assert officer.post(f"/alerts/{site.wandering}/identity", json={}).status_code == 422
    curious = officer.post(f"/alerts/{site.wandering}/identity", json={"purpose": "curiosity"})
    assert curious.status_code == 422
    assert (
        officer.post(
            f"/alerts/{site.panic}/identity", json={"purpose": "investigation"}
        ).status_code
        == 409
    )
    staff = Api(client, "staff_a")
    assert (
        staff.post(
            f"/alerts/{site.child_alert}/identity", json={"purpose": "welfare_check"}
        ).status_code
        == 200
    )
    resident = Api(client, "resident_a")
    gone = resident.post(f"/alerts/{site.wandering}/identity", json={"purpose": "welfare_check"})
    assert gone.status_code == 404
    reads = _reads(what="welfare_view")
    assert [(r.actor, r.purpose, r.person_id) for r in reads] == [
        ("officer_a", "investigation", site.elder),
        ("staff_a", "welfare_check", site.child),
    ]


def test_staff_reads_of_a_person_are_recorded(client, site, ctx) -> None:
    login(client, "staff_a")
    assert client.get(f"/people/{site.elder}").status_code == 200
    assert client.get(f"/communities/{site.a}/people").status_code == 200
    api = Api(client, "staff_a")
    assert api.get(f"/people/{site.elder}").status_code == 200
    listed = api.get(f"/communities/{site.a}/people")
    assert listed.status_code == 200
    reads = _reads()
    assert [(r.what, r.person_id) for r in reads] == [
        ("person_page", site.elder),
        ("person_list", "*"),
        ("person_api", site.elder),
        ("person_list", "*"),
    ]
    assert all(r.actor == "staff_a" and r.purpose is None for r in reads)
    assert set(reads[1].person_ids) == {site.elder, site.guardian, site.child}
    assert len(reads[3].person_ids) == len(listed.json)


def test_the_supervisor_sees_the_reads_and_others_are_refused(client, site, ctx) -> None:
    Api(client, "officer_a").post(
        f"/alerts/{site.wandering}/identity", json={"purpose": "welfare_check"}
    )
    login(client, "staff_a")
    client.get(f"/people/{site.elder}")
    assert client.get("/audit").status_code == 403
    assert client.get("/audit.csv").status_code == 403
    assert 'href="/audit"' not in client.get("/").text
    staff = Api(client, "staff_a")
    assert staff.get(f"/communities/{site.a}/audit").status_code == 403
    assert staff.get(f"/communities/{site.a}/data-reads").status_code == 403
    assert Api(client, "officer_a").get(f"/communities/{site.a}/data-reads").status_code == 403

    client.post("/logout", data={"csrf_token": csrf(client.get("/").text)})
    login(client, "super_a")
    assert 'href="/audit"' in client.get("/").text
    page = client.get("/audit", query_string={"kind": "read"})
    assert page.status_code == 200
    assert "officer_a" in page.text and site.wandering in page.text and "staff_a" in page.text
    only = client.get("/audit", query_string={"actor": "officer_a", "person_id": site.elder})
    assert only.text.count('class="audit-read"') == 1 and "officer_a" in only.text
    # Whose data: the person's name, linked to their page (the supervisor's own community).
    assert f'<a href="/people/{site.elder}">赵秀英</a>' in only.text
    assert client.get("/audit", query_string={"since": "yesterday"}).status_code == 422

    supervisor = Api(client, "super_a")
    reads = supervisor.get(
        f"/communities/{site.a}/data-reads", query_string={"person_id": site.elder}
    )
    assert reads.status_code == 200
    assert [(r["actor"], r["what"], r["purpose"]) for r in reads.json] == [
        ("staff_a", "person_page", None),
        ("officer_a", "welfare_view", "welfare_check"),
    ]
    assert supervisor.get(f"/communities/{site.b}/data-reads").status_code == 404
    assert supervisor.get(f"/communities/{site.a}/audit").status_code == 200


def test_the_csv_export_holds_the_rows_and_is_audited(client, site, ctx) -> None:
    Api(client, "officer_a").post(
        f"/alerts/{site.wandering}/identity", json={"purpose": "welfare_check"}
    )
    login(client, "super_a")
    answer = client.get("/audit.csv", query_string={"community_id": site.a})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert answer.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(answer.data.decode("utf-8-sig"))))
    (read,) = [r for r in rows if r["kind"] == "read"]
    assert read["community"] == "幸福小区" and read["actor"] == "officer_a"
    assert (read["action"], read["purpose"], read["subject"]) == (
        "welfare_view",
        "welfare_check",
        site.elder,
    )
    assert read["action_description"] == "identity behind an alert"
    assert read["at"].endswith("+08:00")
    exported = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.export"))
    assert [(e.actor, e.community_id) for e in exported] == [("super_a", site.a)]

    # The second export holds the first: a change's code, then its words in the request's
    # language (English here; tests/core/test_audit_words.py reads the Chinese), right after.
    again = client.get("/audit.csv", query_string={"community_id": site.a})
    header, *lines = list(csv.reader(io.StringIO(again.data.decode("utf-8-sig"))))
    assert header.index("action_description") == header.index("action") + 1
    (change,) = [dict(zip(header, line, strict=True)) for line in lines if line[0] == "change"]
    assert change["action"] == "audit.export"
    assert change["action_description"] == "audit log exported"
    page = client.get("/audit", query_string={"kind": "change"})
    assert 'audit log exported <code class="audit-code">audit.export</code>' in page.text


def test_an_admin_makes_a_staff_member_a_supervisor(client, site, ctx) -> None:
    staff_id = db.session.scalar(select(User.id).where(User.username == "staff_a"))
    officer_id = db.session.scalar(select(User.id).where(User.username == "officer_a"))
    admin = Api(client, "admin")
    answer = admin.patch(f"/users/{staff_id}", json={"supervisor": True})
    assert answer.status_code == 200 and answer.json["supervisor"] is True
    assert admin.patch(f"/users/{officer_id}", json={"supervisor": True}).status_code == 422
    entry = db.session.scalar(
        select(AuditEntry).where(
            AuditEntry.action == "user.update", AuditEntry.target_id == staff_id
        )
    )
    assert entry.details == {"supervisor": True}
    supervisor_id = db.session.scalar(select(User.id).where(User.username == "super_a"))
    refused = Api(client, "super_a").patch(f"/users/{supervisor_id}", json={"supervisor": False})
    assert refused.status_code == 403
    community = db.session.get(Community, site.a)
    assert community is not None
    made = admin.post(
        "/users",
        json={
            "username": "super_new",
            "password": "a-long-password",
            "role": "staff",
            "community_ids": [site.a],
            "supervisor": True,
        },
    )
    assert made.status_code == 201 and made.json["supervisor"] is True


def test_a_watchlist_hit_reveals_the_entry_to_officers_only(client, site, ctx) -> None:
    from server.models import WatchlistEntry

    entry = WatchlistEntry(
        community_id=site.a,
        name="周某某",
        category="missing",
        note="穿红色外套",
        template_encrypted=crypto.encrypt(b"\0" * 512),
    )
    db.session.add(entry)
    db.session.flush()
    row = alerts.raise_alert(
        community_id=site.a,
        type=AlertType.WATCHLIST_HIT,
        severity=Severity.HIGH,
        summary="Missing person 周某某 at A door",
        evidence={"watchlist_entry_id": entry.id, "event_ids": []},
    )
    db.session.commit()
    officer = Api(client, "officer_a")
    answer = officer.post(f"/alerts/{row.id}/identity", json={"purpose": "investigation"})
    assert answer.status_code == 200, answer.json
    assert (answer.json["subject"], answer.json["name"], answer.json["category"]) == (
        "watchlist_entry",
        "周某某",
        "missing",
    )
    assert answer.json["note"] == "穿红色外套" and answer.json["photo"] is None
    # The property office never learns who is watched for.
    staff = Api(client, "staff_a")
    assert (
        staff.post(f"/alerts/{row.id}/identity", json={"purpose": "investigation"}).status_code
        == 404
    )
    (read,) = _reads(what="welfare_view")
    assert (read.person_id, read.purpose, read.alert_id) == (entry.id, "investigation", row.id)


def test_the_picture_of_a_known_persons_event_is_a_recorded_read(client, site, ctx) -> None:
    from gatekeeper.vocabulary import CredentialType, Decision, Reason
    from server.access import snapshots
    from server.models import AccessEvent, utcnow

    known, unknown = (
        AccessEvent(
            community_id=site.a,
            occurred_at=utcnow(),
            credential_type=CredentialType.FACE,
            decision=decision,
            reason=reason,
            person_id=person_id,
        )
        for decision, reason, person_id in (
            (Decision.GRANT, Reason.RESIDENT, site.elder),
            (Decision.DENY, Reason.UNKNOWN_FACE, None),
        )
    )
    db.session.add_all([known, unknown])
    db.session.flush()
    for event in (known, unknown):
        snapshots.store(event, b"\xff\xd8 not really a jpeg")
    db.session.commit()
    officer = Api(client, "officer_a")
    assert officer.get(f"/events/{known.id}/snapshot").status_code == 200
    assert officer.get(f"/events/{unknown.id}/snapshot").status_code == 200
    (read,) = _reads()
    assert (read.what, read.person_id, read.actor) == ("event_snapshot", site.elder, "officer_a")


def test_the_command_line_creates_a_supervisor(app, site, ctx) -> None:
    def create(username: str, role: str) -> object:
        return app.test_cli_runner().invoke(
            args=[
                *("create-user", "--username", username, "--role", role),
                *("--community", site.a, "--supervisor", "--password-stdin"),
            ],
            input="a-long-password\n",
        )

    made = create("chief", "staff")
    assert made.exit_code == 0, made.output
    chief = db.session.scalar(select(User).where(User.username == "chief"))
    assert chief.supervisor is True
    refused = create("chief_officer", "officer")
    assert refused.exit_code != 0 and "Only staff accounts can be supervisors." in refused.output
