"""Face enrolment and person-ID match: templates encrypted, photos only when a setting says."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select

from gatekeeper import faces
from server.community import settings as community_settings
from server.core import audit, crypto
from server.core.errors import Conflict, DomainError, Invalid, PayloadTooLarge
from server.core.scope import Scope
from server.extensions import db
from server.models import Community, FaceTemplate, IdCheck, Person, PersonStatus
from server.people.galleries import record_change
from server.people.service import FACE_PURPOSE, active_consent

MAX_FACES_PER_PERSON = 5
MODEL_NAME = "dlib_resnet_v1/5pt"


def image_problem(error: faces.ImageError, field: str) -> DomainError:
    if error.reason in (faces.ImageProblem.TOO_MANY_BYTES, faces.ImageProblem.TOO_MANY_PIXELS):
        return PayloadTooLarge(f"{field}: {error.detail}", reason=error.reason.value)
    return Invalid(
        f"{field}: {error.detail}", errors={field: [error.detail]}, reason=error.reason.value
    )


def _measurements(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    data = asdict(result)
    data["box"] = {k: int(v) for k, v in data["box"].items()}
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in data.items()}


def checked_photo(image: bytes) -> faces.EnrolmentResult:
    """The enrolment check of an uploaded ``image`` (a face to enrol, a watchlist face).

    An unusable picture is a problem on ``image``; a rejected face a 422 with the ``reason``
    and the measurements behind it. The result returned is always ``ok``.
    """
    try:
        result = faces.assess_enrolment_photo(image)
    except faces.ImageError as error:
        raise image_problem(error, "image") from error
    if not result.ok:
        raise Invalid(
            f"Photo rejected: {result.reason.value}.",
            errors={"image": [result.reason.value]},
            reason=result.reason.value,
            measurements=_measurements(result.measurements),
        )
    return result


def _editable_person(scope: Scope, person_id: str) -> Person:
    person = scope.writable(Person, person_id)
    if person.status is PersonStatus.MOVED_OUT:
        raise Conflict("This person has moved out.")
    return person


def enrol_face(scope: Scope, person_id: str, image: bytes) -> FaceTemplate:
    """Check an enrolment photo and store its template; a rejection stores nothing."""
    person = _editable_person(scope, person_id)
    consent = active_consent(person.id, FACE_PURPOSE)
    if consent is None:
        raise Conflict(
            "Record the person's consent to face recognition before enrolling a "
            "face (POST /people/{pid}/consents)."
        )
    count = db.session.scalar(
        select(func.count()).select_from(FaceTemplate).where(FaceTemplate.person_id == person.id)
    )
    if count >= MAX_FACES_PER_PERSON:
        raise Conflict(f"A person has at most {MAX_FACES_PER_PERSON} face photos; delete one.")
    result = checked_photo(image)
    settings = community_settings.effective(db.session.get(Community, person.community_id).settings)
    template = FaceTemplate(
        community_id=person.community_id,
        person_id=person.id,
        model=MODEL_NAME,
        template_encrypted=crypto.encrypt(faces.template_to_bytes(result.template)),
        quality=_measurements(result.measurements),
        consent_id=consent.id,
        photo_encrypted=crypto.encrypt(image) if settings.keep_enrolment_photos else None,
    )
    db.session.add(template)
    db.session.flush()
    record_change(person.community_id, template.id, person.id, "add")
    audit.record(
        scope.user,
        "face.enrol",
        community_id=person.community_id,
        target=template,
        details={"person_id": person.id, "photo_kept": template.photo_encrypted is not None},
    )
    return template


def delete_face(scope: Scope, face_id: str) -> None:
    template = scope.writable(FaceTemplate, face_id)
    audit.record(
        scope.user,
        "face.delete",
        community_id=template.community_id,
        target=template,
        details={"person_id": template.person_id},
    )
    record_change(template.community_id, template.id, template.person_id, "remove")
    db.session.delete(template)


def id_check(scope: Scope, person_id: str, id_photo: bytes, live_photo: bytes) -> IdCheck:
    """Person-ID match, recorded; activates a pending person when the community requires it."""
    person = _editable_person(scope, person_id)
    try:
        result = faces.match_id_photo(id_photo, live_photo)
    except faces.ImageError as error:
        field = error.photo.value if error.photo else "image"
        raise image_problem(error, field) from error
    check = IdCheck(
        community_id=person.community_id,
        person_id=person.id,
        match=result.match,
        distance=result.distance,
        tolerance=result.tolerance,
        reason=(f"{result.failed_photo.value}:{result.reason.value}" if result.reason else None),
        checked_by_user_id=scope.user.id,
    )
    db.session.add(check)
    db.session.flush()
    if result.match and person.status is PersonStatus.PENDING:
        person.status = PersonStatus.ACTIVE
    audit.record(
        scope.user,
        "person.id_check",
        community_id=person.community_id,
        target=person,
        details={"match": result.match, "distance": result.distance, "status": person.status.value},
    )
    return check
