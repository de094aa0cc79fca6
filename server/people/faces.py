"""Face enrolment and person-ID match: templates encrypted, photos only when a setting says."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import func, select

from gatekeeper import faces
from gatekeeper.identity import mask_name
from server.community import settings as community_settings
from server.core import audit, crypto
from server.core.errors import Conflict, DomainError, Invalid, PayloadTooLarge
from server.core.scope import Scope
from server.core.wording import face_reason_words
from server.extensions import db
from server.models import (
    Building,
    Community,
    FaceTemplate,
    IdCheck,
    Membership,
    Person,
    PersonStatus,
    Unit,
)
from server.people.galleries import galleries, record_change
from server.people.service import FACE_PURPOSE, active_consent, english_or

MAX_FACES_PER_PERSON = 5
MODEL_NAME = "dlib_resnet_v1/5pt"

# Why an upload is not a usable image, in words (the library's English detail gives numbers).
IMAGE_PROBLEM_WORDS: dict[str, LazyString] = {
    faces.ImageProblem.EMPTY: _l("the file is empty"),
    faces.ImageProblem.TOO_MANY_BYTES: _l("the file is larger than the server accepts"),
    faces.ImageProblem.TOO_MANY_PIXELS: _l("the image has more pixels than the server accepts"),
    faces.ImageProblem.UNSUPPORTED_FORMAT: _l("not a JPEG, PNG or WebP image"),
    faces.ImageProblem.UNREADABLE: _l("the image cannot be read (damaged or cut short)"),
}
# The upload fields an image problem is about.
IMAGE_FIELD_WORDS: dict[str, LazyString] = {
    "image": _l("image"),
    "selfie": _l("photo"),
    "snapshot": _l("snapshot"),
    faces.PhotoRole.ID_PHOTO: _l("ID card photo"),
    faces.PhotoRole.LIVE_PHOTO: _l("live photo"),
}


def image_problem(error: faces.ImageError, field: str) -> DomainError:
    problem = IMAGE_PROBLEM_WORDS.get(error.reason, error.detail)
    detail = english_or(
        f"{field}: {error.detail}",
        _l(
            "%(field)s: %(problem)s",
            field=IMAGE_FIELD_WORDS.get(field, field),
            problem=problem,
        ),
    )
    if error.reason in (faces.ImageProblem.TOO_MANY_BYTES, faces.ImageProblem.TOO_MANY_PIXELS):
        return PayloadTooLarge(detail, reason=error.reason.value)
    return Invalid(
        detail, errors={field: [english_or(error.detail, problem)]}, reason=error.reason.value
    )


def measurements(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    data = asdict(result)
    data["box"] = {k: int(v) for k, v in data["box"].items()}
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in data.items()}


def checked_photo(image: bytes, *, field: str = "image") -> faces.EnrolmentResult:
    """The enrolment check of an uploaded ``image`` (a face to enrol, a watchlist face).

    An unusable picture is a problem on ``field``; a rejected face a 422 with the ``reason``
    and the measurements behind it. The result returned is always ``ok``.
    """
    try:
        result = faces.assess_enrolment_photo(image)
    except faces.ImageError as error:
        raise image_problem(error, field) from error
    if not result.ok:
        raise Invalid(
            _l(
                "Photo rejected: %(reason)s.",
                reason=LazyString(face_reason_words, result.reason.value),
            ),
            errors={field: [result.reason.value]},
            reason=result.reason.value,
            measurements=measurements(result.measurements),
        )
    return result


def check_not_duplicate(community_id: str, template: Any, person_id: str | None) -> None:
    """Refuse a face that the community's doors would confuse with someone else's.

    Within the 1:N tolerance plus the margin of another person's template, the door could
    no longer tell the two apart and both would be refused as ``unknown_face`` (ambiguous):
    enrolling a second person with the first one's face silently locks the first one out.
    The answer names the other person masked, with their unit, so staff can tell whether
    it is the same person enrolled twice.
    """
    community = db.session.get(Community, community_id)
    settings = community_settings.effective(community.settings)
    nearest = galleries().gallery(community_id).nearest_other(template, person_id)
    if nearest is None or nearest.distance > settings.face_tolerance + settings.face_margin:
        return
    other = db.session.get(Person, nearest.person_id)
    unit = _unit_label(other.id) if other is not None else None
    name = mask_name(other.name) if other is not None else "*"
    raise Conflict(
        _l(
            "This face is already enrolled for %(name)s (%(unit)s): the doors could not tell "
            "the two apart and would refuse both. Enrol another photo, or check whether it "
            "is the same person.",
            name=name,
            unit=unit or "—",
        ),
        errors={"image": [_l("Too close to the face of %(name)s.", name=name)]},
        reason="duplicate_face",
        duplicate_of={
            "person_id": nearest.person_id,
            "name": name,
            "unit": unit,
            "distance": round(nearest.distance, 3),
        },
    )


def _unit_label(person_id: str) -> str | None:
    """``A1 · 101``: the unit of the person's first membership with one."""
    row = db.session.execute(
        select(Building.name, Unit.number)
        .join(Unit, Unit.building_id == Building.id)
        .join(Membership, Membership.unit_id == Unit.id)
        .where(Membership.person_id == person_id)
        .order_by(Membership.created_at)
        .limit(1)
    ).first()
    return f"{row[0]} · {row[1]}" if row else None


def _editable_person(scope: Scope, person_id: str) -> Person:
    person = scope.writable(Person, person_id)
    if person.status is PersonStatus.MOVED_OUT:
        raise Conflict(_l("This person has moved out."))
    return person


def enrol_face(scope: Scope, person_id: str, image: bytes) -> FaceTemplate:
    """Check an enrolment photo and store its template; a rejection stores nothing."""
    person, consent = _ready_for_a_face(scope, person_id)
    result = checked_photo(image)
    return _store_template(
        scope, person, consent, result.template, measurements(result.measurements), image
    )


def enrol_checked_template(
    scope: Scope,
    person_id: str,
    template: Any,
    quality: dict[str, Any] | None,
    image: bytes | None = None,
) -> FaceTemplate:
    """Store a template that passed :func:`checked_photo` earlier (the enrolment form checks
    the photo before the person exists, and keeps the template across a retry).

    ``image`` is the photo itself when the caller still has it: kept only where the
    community keeps enrolment photos. The duplicate check runs again here.
    """
    person, consent = _ready_for_a_face(scope, person_id)
    return _store_template(scope, person, consent, template, quality, image)


def _ready_for_a_face(scope: Scope, person_id: str) -> tuple[Person, Any]:
    """The person, and their consent, when one more face may be enrolled for them."""
    person = _editable_person(scope, person_id)
    consent = active_consent(person.id, FACE_PURPOSE)
    if consent is None:
        raise Conflict(
            _l(
                "Record the person's consent to face recognition before enrolling a "
                "face (POST /people/{pid}/consents)."
            )
        )
    count = db.session.scalar(
        select(func.count()).select_from(FaceTemplate).where(FaceTemplate.person_id == person.id)
    )
    if count >= MAX_FACES_PER_PERSON:
        raise Conflict(
            _l(
                "A person has at most %(count)s face photos; delete one.",
                count=MAX_FACES_PER_PERSON,
            )
        )
    return person, consent


def _store_template(
    scope: Scope,
    person: Person,
    consent: Any,
    template: Any,
    quality: dict[str, Any] | None,
    image: bytes | None,
) -> FaceTemplate:
    check_not_duplicate(person.community_id, template, person.id)
    settings = community_settings.effective(db.session.get(Community, person.community_id).settings)
    keep_photo = settings.keep_enrolment_photos and image is not None
    row = FaceTemplate(
        community_id=person.community_id,
        person_id=person.id,
        model=MODEL_NAME,
        template_encrypted=crypto.encrypt(faces.template_to_bytes(template)),
        quality=quality,
        consent_id=consent.id,
        photo_encrypted=crypto.encrypt(image) if keep_photo and image is not None else None,
    )
    db.session.add(row)
    db.session.flush()
    record_change(person.community_id, row.id, person.id, "add")
    audit.record(
        scope.user,
        "face.enrol",
        community_id=person.community_id,
        target=row,
        details={"person_id": person.id, "photo_kept": row.photo_encrypted is not None},
    )
    return row


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
