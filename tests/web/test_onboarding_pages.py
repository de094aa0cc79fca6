"""Onboarding from the pages: a resident's login and activation link, the lobby's invitation,
self-registration with a selfie, the staff's queue, and where accounts end."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gatekeeper.vocabulary import PersonRole
from server.extensions import db
from server.models import (
    AuditEntry,
    Consent,
    FaceTemplate,
    Lease,
    Membership,
    Person,
    RegistrationLink,
    RegistrationRequest,
    RegistrationStatus,
    User,
    utcnow,
)
from server.people.service import close_ended_leases
from tests import factories
from tests.fetch_test_data import test_image as photo_path
from tests.support.api import in_app
from tests.support.pages import csrf, login


def photo(name: str) -> bytes:
    return photo_path(name).read_bytes()


def _post(client, path: str, data: dict | None = None, page: str = "/", **kwargs):
    """POST a page's form with the CSRF token of ``page``."""
    token = csrf(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


@pytest.fixture
def resident_person(app, world) -> str:
    with in_app(app):
        person = factories.person(world.a, "王小明", phone="13800138000")
        factories.membership(person, PersonRole.OWNER, unit_of=world.unit_a)
        return person.id


def _invite(client, person_id: str, username: str = "13800138000"):
    return _post(
        client,
        f"/people/{person_id}/account",
        {"username": username},
        page=f"/people/{person_id}",
    )


def _activation_link(page: str) -> str:
    match = re.search(r'value="http://localhost(/activate/[^"]+)"', page)
    assert match, page
    return match.group(1)


# A resident's login ---------------------------------------------------------------------------


def test_staff_create_a_login_and_the_resident_sets_the_password(
    app, client, world, resident_person
) -> None:
    login(client, "staff_a")
    person_page = client.get(f"/people/{resident_person}").text
    assert "Create login and activation link" in person_page
    shown = _invite(client, resident_person)
    assert shown.status_code == 200, shown.text
    assert shown.headers["Cache-Control"] == "no-store"
    assert 'src="data:image/png;base64,' in shown.text  # the QR code, to show on a screen
    link = _activation_link(shown.text)
    with in_app(app):
        user = db.session.scalar(select(User).where(User.username == "13800138000"))
        assert user.person_id == resident_person and user.unit_id == world.unit_a
        assert user.password_set is False
    assert "not activated yet" in client.get(f"/people/{resident_person}").text

    resident = app.test_client()
    # Nobody can sign in with the account before the link was used.
    assert login(resident, "13800138000", password="", expect=None).status_code != 302
    page = resident.get(link)
    assert page.status_code == 200 and "13800138000" in page.text
    mismatch = resident.post(
        link,
        data={"password": "long-enough-1", "confirmation": "other", "csrf_token": csrf(page.text)},
    )
    assert mismatch.status_code == 422 and "The two passwords differ." in mismatch.text
    short = resident.post(
        link, data={"password": "short", "confirmation": "short", "csrf_token": csrf(page.text)}
    )
    assert short.status_code == 422 and "At least 8 characters." in short.text
    done = resident.post(
        link,
        data={
            "password": "long-enough-1",
            "confirmation": "long-enough-1",
            "csrf_token": csrf(page.text),
        },
    )
    assert done.status_code == 302 and done.location == "/"
    assert "My home" in resident.get("/").text  # signed in
    # The link is used up; a new browser signs in with the password.
    assert resident.get(link).status_code == 404
    other = app.test_client()
    login(other, "13800138000", password="long-enough-1")
    assert "Your password is set" not in other.get("/").text
    with in_app(app):
        actions = set(db.session.scalars(select(AuditEntry.action)))
        assert {"user.invite", "user.activate"} <= actions


def test_a_lost_link_is_replaced_and_the_old_one_stops(app, client, world, resident_person) -> None:
    login(client, "staff_a")
    first = _activation_link(_invite(client, resident_person).text)
    again = _post(client, f"/people/{resident_person}/account", page=f"/people/{resident_person}")
    second = _activation_link(again.text)
    assert first != second
    assert client.get(first).status_code == 404
    assert app.test_client().get(second).status_code == 200


def test_an_activation_link_expires(app, client, world, resident_person, time_machine) -> None:
    login(client, "staff_a")
    link = _activation_link(_invite(client, resident_person).text)
    time_machine.move_to(utcnow() + timedelta(days=15), tick=False)
    assert app.test_client().get(link).status_code == 404


def test_a_taken_username_is_refused_and_nothing_is_made(
    app, client, world, resident_person
) -> None:
    login(client, "staff_a")
    answer = _invite(client, resident_person, username="resident_a")
    assert answer.status_code == 409
    assert "The username resident_a is taken." in answer.text
    with in_app(app):
        assert db.session.scalar(select(User.id).where(User.person_id == resident_person)) is None


def test_another_communitys_staff_cannot_invite(client, world, resident_person) -> None:
    login(client, "staff_b")
    answer = _post(client, f"/people/{resident_person}/account", {"username": "x1"})
    assert answer.status_code == 404


def test_a_tenants_login_ends_with_the_lease(app, client, world) -> None:
    with in_app(app):
        tenant = factories.person(world.a, "租客")
        factories.membership(tenant, PersonRole.TENANT, unit_of=world.unit_a)
        lease = factories.lease(tenant, world.unit_a)
        tenant_id, lease_id = tenant.id, lease.id
    login(client, "staff_a")
    link = _activation_link(_invite(client, tenant_id, username="tenant1").text)
    resident = app.test_client()
    page = resident.get(link)
    resident.post(
        link,
        data={
            "password": "tenant-pass-1",
            "confirmation": "tenant-pass-1",
            "csrf_token": csrf(page.text),
        },
    )
    assert resident.get("/").status_code == 200
    with in_app(app):
        db.session.get(Lease, lease_id).ends_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
        close_ended_leases()
        db.session.commit()
        assert db.session.scalar(select(User).where(User.username == "tenant1")).disabled
    assert resident.get("/").status_code == 302  # signed out
    login(app.test_client(), "tenant1", password="tenant-pass-1", expect=401)


# The lobby's invitation and self-registration -------------------------------------------------


@pytest.fixture
def link_code(app, client, world) -> str:
    login(client, "staff_a")
    made = _post(
        client,
        f"/communities/{world.a}/registration-links",
        page=f"/communities/{world.a}/registrations",
    )
    assert made.status_code == 302 and "/poster" in made.location
    poster = client.get(made.location).text
    assert 'src="data:image/png;base64,' in poster
    match = re.search(r"http://localhost/join/([A-Za-z0-9_-]+)", poster)
    assert match, poster
    return match.group(1)


def _join(client, code: str, selfie: bytes | None = None, **answers: str):
    page = client.get(f"/join/{code}")
    data = {"csrf_token": csrf(page.text), **answers}
    if selfie is not None:
        data["selfie"] = (io.BytesIO(selfie), "selfie.jpg")
    return client.post(f"/join/{code}", data=data, content_type="multipart/form-data")


def _answers(world, **changes: str) -> dict[str, str]:
    return {
        "name": "张伟",
        "phone": "13900139000",
        "unit_id": world.unit_a,
        "role": "owner",
        **changes,
    }


def test_the_form_reports_every_problem_at_once(app, world, link_code) -> None:
    guest = app.test_client()
    answer = _join(
        guest,
        link_code,
        selfie=photo("obama.jpg"),
        name="",
        phone="abc",
        unit_id=world.unit_b,  # another community's unit
        role="tenant",
        lease_starts_at="2026-13-01",
        document_number="110101199003077",
    )
    assert answer.status_code == 422
    for message in (
        "Enter your name.",
        "Enter a mobile phone number (5 to 20 digits).",
        "Choose a unit from the list.",
        "Enter a date like 2026-12-01.",
        "A tenant gives the lease&#39;s last day.",
        "Agree to face recognition to send a photo, or leave the photo out.",
    ):
        assert message in answer.text, message
    assert 'id="document_number-error"' in answer.text
    with in_app(app):
        assert db.session.scalar(select(func.count()).select_from(RegistrationRequest)) == 0


def test_a_registration_waits_for_staff_then_the_resident_activates(
    app, client, world, link_code
) -> None:
    guest = app.test_client()
    guest.environ_base.pop("HTTP_ACCEPT_LANGUAGE")  # a phone that asks for nothing: Chinese
    form = guest.get(f"/join/{link_code}")
    assert '<html lang="zh-CN">' in form.text and "住户登记" in form.text
    filed = _join(
        guest, link_code, selfie=photo("obama.jpg"), face_consent="yes", **_answers(world)
    )
    assert filed.status_code == 303, filed.text
    status_path = filed.location
    waiting = guest.get(status_path)
    assert 'data-status="pending"' in waiting.text and "等待物业审核" in waiting.text
    with in_app(app):
        request = db.session.scalar(select(RegistrationRequest))
        assert request.template_encrypted is not None and request.face_consent_at is not None
        # Nothing grants access yet: no person, no face, no account.
        assert db.session.scalar(select(Person.id).where(Person.name == "张伟")) is None
        assert db.session.scalar(select(User.id).where(User.username == "13900139000")) is None
        request_id = request.id
    # The same phone cannot file a second request while one waits.
    again = _join(app.test_client(), link_code, **_answers(world, name="别人"))
    assert again.status_code == 422
    assert "already waiting for the property office" in again.text

    home = client.get("/").text
    assert f"/communities/{world.a}/registrations" in home and "1 waiting" in home
    queue = client.get(f"/communities/{world.a}/registrations")
    assert "张伟" in queue.text and f"/registrations/{request_id}" in queue.text
    review = client.get(f"/registrations/{request_id}")
    assert "photo checked" in review.text
    approved = client.post(
        f"/registrations/{request_id}",
        data={
            "csrf_token": csrf(review.text),
            "action": "approve",
            "name": "张伟",
            "phone": "13900139000",
            "unit_id": world.unit_a,
            "role": "owner",
        },
    )
    assert approved.status_code == 302, approved.text
    with in_app(app):
        person = db.session.scalar(select(Person).where(Person.name == "张伟"))
        assert person is not None and person.phone == "13900139000"
        membership = db.session.scalar(select(Membership).where(Membership.person_id == person.id))
        assert membership.role is PersonRole.OWNER and membership.unit_id == world.unit_a
        assert db.session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == person.id))
        assert db.session.scalar(select(Consent.id).where(Consent.person_id == person.id))
        user = db.session.scalar(select(User).where(User.username == "13900139000"))
        assert user.person_id == person.id and not user.password_set
        assert db.session.get(RegistrationRequest, request_id).template_encrypted is None

    approved_page = guest.get(status_path)
    assert 'data-status="approved"' in approved_page.text
    activate = re.search(r'href="(/activate/[^"]+)"', approved_page.text).group(1)
    page = guest.get(activate)
    done = guest.post(
        activate,
        data={
            "password": "my-new-pass",
            "confirmation": "my-new-pass",
            "csrf_token": csrf(page.text),
        },
    )
    assert done.status_code == 302
    assert guest.get("/").status_code == 200  # signed in as the new resident


def test_a_rejected_request_shows_the_reason_and_keeps_no_biometrics(
    app, client, world, link_code
) -> None:
    guest = app.test_client()
    filed = _join(
        guest, link_code, selfie=photo("obama.jpg"), face_consent="yes", **_answers(world)
    )
    with in_app(app):
        request_id = db.session.scalar(select(RegistrationRequest.id))
    review = client.get(f"/registrations/{request_id}")
    no_reason = client.post(
        f"/registrations/{request_id}", data={"csrf_token": csrf(review.text), "action": "reject"}
    )
    assert no_reason.status_code == 422 and "Say why, for the registrant." in no_reason.text
    client.post(
        f"/registrations/{request_id}",
        data={"csrf_token": csrf(review.text), "action": "reject", "reason": "此房屋业主另有其人"},
    )
    page = guest.get(filed.location)
    assert 'data-status="rejected"' in page.text and "此房屋业主另有其人" in page.text
    with in_app(app):
        request = db.session.get(RegistrationRequest, request_id)
        assert request.status is RegistrationStatus.REJECTED
        assert request.template_encrypted is None and request.template_quality is None
        assert db.session.scalar(select(func.count()).select_from(Person)) == 0


def test_a_selfie_of_an_enrolled_face_cannot_be_approved(app, client, world, link_code) -> None:
    with in_app(app):
        from tests.support.faces import enrol_resident

        enrol_resident(world.a, world.unit_a, "王小明", "obama.jpg")
    _join(
        app.test_client(),
        link_code,
        selfie=photo("obama2.jpg"),
        face_consent="yes",
        **_answers(world),
    )
    with in_app(app):
        request_id = db.session.scalar(select(RegistrationRequest.id))
    review = client.get(f"/registrations/{request_id}")
    assert 'id="look-alike"' in review.text and "王*明" in review.text and "A1 · 101" in review.text
    refused = client.post(
        f"/registrations/{request_id}",
        data={"csrf_token": csrf(review.text), "action": "approve"},
    )
    assert refused.status_code == 409 or refused.status_code == 422
    with in_app(app):
        assert db.session.scalar(select(Person.id).where(Person.name == "张伟")) is None


def test_a_blurry_selfie_is_refused_with_the_other_answers_kept(app, world, link_code) -> None:
    from PIL import Image, ImageFilter

    buffer = io.BytesIO()
    Image.open(io.BytesIO(photo("obama.jpg"))).filter(ImageFilter.GaussianBlur(6)).convert(
        "RGB"
    ).save(buffer, "JPEG")
    answer = _join(
        app.test_client(),
        link_code,
        selfie=buffer.getvalue(),
        face_consent="yes",
        **_answers(world),
    )
    assert answer.status_code == 422
    assert 'id="selfie-error"' in answer.text
    assert 'value="张伟"' in answer.text and 'value="13900139000"' in answer.text


def test_a_disabled_invitation_opens_nothing(app, client, world, link_code) -> None:
    with in_app(app):
        link_id = db.session.scalar(select(RegistrationLink.id))
    page = client.get(f"/communities/{world.a}/registrations")
    client.post(f"/registration-links/{link_id}/disable", data={"csrf_token": csrf(page.text)})
    assert app.test_client().get(f"/join/{link_code}").status_code == 404


def test_the_queue_is_the_communitys_own(app, client, world, link_code) -> None:
    _join(app.test_client(), link_code, **_answers(world))
    with in_app(app):
        request_id = db.session.scalar(select(RegistrationRequest.id))
        link_id = db.session.scalar(select(RegistrationLink.id))
    for username in ("staff_b", "resident_a", "officer_a"):
        other = app.test_client()
        login(other, username)
        assert other.get(f"/registrations/{request_id}").status_code == 404, username
        assert other.get(f"/registration-links/{link_id}/poster").status_code == 404, username
        assert other.get(f"/communities/{world.a}/registrations").status_code == 404, username


def test_registering_is_rate_limited(app, world, link_code) -> None:
    guest = app.test_client()
    statuses = [
        _join(guest, link_code, **_answers(world, phone=f"1390013{n:04d}", name="")).status_code
        for n in range(12)
    ]
    assert statuses[:10] == [422] * 10
    assert statuses[-1] == 429
