"""Enrolment: people, their roles and units, documents, leases, workers, credentials, move-out."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import Select, or_, select, update

from gatekeeper.identity import DocumentError, DocumentProblem, mask_document, validate_document
from gatekeeper.schedule import WeeklySchedule
from gatekeeper.vocabulary import PersonRole
from server.community import settings as community_settings
from server.core import audit, crypto
from server.core.auth import end_sign_ins
from server.core.errors import Conflict, Invalid
from server.core.i18n import ENGLISH, current_locale
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import (
    AccessPoint,
    Card,
    Community,
    Consent,
    FaceTemplate,
    Lease,
    Membership,
    Person,
    PersonStatus,
    RfidTag,
    Unit,
    User,
    Vehicle,
    VisitorPass,
    WorkerPermit,
    utcnow,
)
from server.people.galleries import record_change

# Roles that live in a unit; workers have none.
UNIT_ROLES = frozenset(set(PersonRole) - {PersonRole.WORKER})
# Roles a community can hold back until a person-ID match succeeds.
ID_MATCH_ROLES = frozenset({PersonRole.OWNER, PersonRole.RESIDENT, PersonRole.TENANT})
FACE_PURPOSE = "face_recognition"

_NOT_IN_COMMUNITY = {
    Unit: _l("No such unit in this community."),
    Person: _l("No such person in this community."),
    AccessPoint: _l("No such access point in this community."),
}
_ALREADY_REGISTERED = {
    "uid": _l("This card UID is already registered in the community."),
    "plate": _l("This plate is already registered in the community."),
    "epc": _l("This tag EPC is already registered in the community."),
}
# Why a document number was refused, for answers in another language than English (the
# library's English sentence names the rule broken; these say it in the reader's words).
DOCUMENT_PROBLEM_WORDS: dict[str, LazyString] = {
    DocumentProblem.UNKNOWN_TYPE: _l("Unknown document type."),
    DocumentProblem.EMPTY: _l("Enter the document number."),
    DocumentProblem.BAD_LENGTH: _l("The document number has the wrong length."),
    DocumentProblem.BAD_CHARACTERS: _l(
        "The document number has characters this document does not use."
    ),
    DocumentProblem.BAD_FORMAT: _l("The number does not have this document's format."),
    DocumentProblem.BAD_REGION: _l(
        "A resident ID number starts with a province code (11 to 82); this one does not."
    ),
    DocumentProblem.BAD_BIRTH_DATE: _l("The date of birth in the number is not possible."),
    DocumentProblem.BAD_CHECK_DIGIT: _l(
        "The number fails its check digit: a character is probably mistyped."
    ),
}


def english_or(english: str, words: Any) -> LazyString:
    """A message from the ``gatekeeper`` library, which writes English only: its own
    sentence when the answer is English (it names the numbers and limits), ``words`` (a
    translated text for its reason code) in any other language."""
    return LazyString(lambda: english if current_locale() == ENGLISH else str(words))


# A phone number as people type it (the API's PersonSchema checks the same).
PHONE_PATTERN = re.compile(r"\+?[0-9 -]{5,20}")


def document_problem_words(error: DocumentError) -> LazyString:
    """Why a document number was refused, in the reader's language."""
    return english_or(str(error), DOCUMENT_PROBLEM_WORDS[error.reason])


def _field_error(field: str, message: Any) -> Invalid:
    return Invalid(message, errors={field: [message]})


def _in_community(scope: Scope, model: type, ident: str, community_id: str, field: str) -> Any:
    row = db.session.scalar(
        scope.query(model).where(model.id == ident, model.community_id == community_id)  # type: ignore[attr-defined]
    )
    if row is None:
        raise _field_error(field, _NOT_IN_COMMUNITY[model])
    return row


def _check_window(starts: datetime | None, ends: datetime | None, field: str) -> None:
    if starts is not None and ends is not None and ends <= starts:
        raise _field_error(field, _l("The end must come after the start."))


def _apply_document(person: Person, document: dict[str, str] | None) -> None:
    """Validate, encrypt and mask an identity document; the number is never stored in clear."""
    if document is None:
        person.id_document_type = person.id_document_encrypted = person.id_document_masked = None
        return
    try:
        number = validate_document(document["type"], document["number"])
    except DocumentError as error:
        raise _field_error("id_document", document_problem_words(error)) from error
    person.id_document_type = document["type"]
    person.id_document_encrypted = crypto.encrypt_text(number)
    person.id_document_masked = mask_document(document["type"], number)


def _schedule(raw: list[Any] | None, field: str) -> list[Any] | None:
    if raw is None:
        return None
    try:
        WeeklySchedule.from_json(raw)
    except ValueError as error:
        raise _field_error(
            field, english_or(str(error), _l("The weekly schedule is not valid."))
        ) from error
    return raw


# People -------------------------------------------------------------------------------------


def create_person(scope: Scope, community_id: str, data: dict[str, Any]) -> Person:
    """Enrol someone with one role; tenants come with their lease, workers with a permit."""
    community = scope.get(Community, community_id)
    scope.require_write(Person)
    role: PersonRole = data["role"]
    unit = _unit_of_role(scope, community.id, role, data)
    _check_role_parts(role, data, unit)
    _check_window(data.get("valid_from"), data.get("valid_until"), "valid_until")
    settings = community_settings.effective(community.settings)
    pending = settings.require_id_match and role in ID_MATCH_ROLES
    person = Person(
        community_id=community.id,
        name=data["name"],
        phone=data.get("phone"),
        status=PersonStatus.PENDING if pending else PersonStatus.ACTIVE,
        valid_from=data.get("valid_from"),
        valid_until=data.get("valid_until"),
        lives_alone=data.get("lives_alone", False),
        wander_risk=data.get("wander_risk", False),
    )
    _apply_document(person, data.get("id_document"))
    db.session.add(person)
    db.session.flush()
    db.session.add(
        Membership(
            community_id=community.id,
            person_id=person.id,
            role=role,
            unit_id=unit.id if unit else None,
        )
    )
    if data.get("guardian_ids"):
        person.guardians = _guardians(scope, person, data["guardian_ids"])
    if role is PersonRole.TENANT and unit is not None:  # a tenant's unit is required above
        _new_lease(person, unit, data["lease"])
    if role is PersonRole.WORKER:
        _new_permit(scope, person, data["worker"])
    audit.record(
        scope.user,
        "person.create",
        community_id=community.id,
        target=person,
        details={
            "role": role.value,
            "unit_id": unit.id if unit else None,
            "status": person.status.value,
        },
    )
    return person


def _unit_of_role(
    scope: Scope, community_id: str, role: PersonRole, data: dict[str, Any]
) -> Unit | None:
    """The unit ``unit_id`` names, in this community: required for every role but workers."""
    if role in UNIT_ROLES:
        if not data.get("unit_id"):
            raise _field_error(
                "unit_id",
                _l(
                    "Someone with the role %(role)s lives in a unit: give unit_id.",
                    role=LazyString(word, role),
                ),
            )
        return _in_community(scope, Unit, data["unit_id"], community_id, "unit_id")
    if data.get("unit_id"):
        raise _field_error("unit_id", _l("Workers do not belong to a unit."))
    return None


def _check_role_parts(role: PersonRole, data: dict[str, Any], unit: Unit | None) -> None:
    """A tenant comes with a lease and a worker with a permit, nobody else with either.

    What does not fit is refused rather than dropped: a lease whose ``unit_id`` is not the
    membership's unit (another unit, another community's) would otherwise be stored as
    the membership's, and the caller would never learn the unit they named was ignored.
    """
    lease, worker = data.get("lease"), data.get("worker")
    if role is PersonRole.TENANT and not lease:
        raise _field_error("lease", _l("A tenant needs a lease (starts_at, ends_at)."))
    if role is not PersonRole.TENANT and lease:
        raise _field_error(
            "lease",
            _l("Only tenants have leases, not the role %(role)s.", role=LazyString(word, role)),
        )
    if lease and unit is not None and lease.get("unit_id") not in (None, unit.id):
        raise _field_error(
            "lease.unit_id", _l("The lease is of the tenant's unit: give unit_id's.")
        )
    if role is PersonRole.WORKER and not worker:
        raise _field_error("worker", _l("A worker needs a permit (tag, access points, dates)."))
    if role is not PersonRole.WORKER and worker:
        raise _field_error(
            "worker",
            _l("Only workers have permits, not the role %(role)s.", role=LazyString(word, role)),
        )


def _guardians(scope: Scope, person: Person, ids: list[str]) -> list[Person]:
    guardians = [_in_community(scope, Person, i, person.community_id, "guardian_ids") for i in ids]
    if any(g.id == person.id for g in guardians):
        raise _field_error("guardian_ids", _l("A person cannot be their own guardian."))
    return guardians


def update_person(scope: Scope, person_id: str, changes: dict[str, Any]) -> Person:
    person = scope.writable(Person, person_id)
    if person.status is PersonStatus.MOVED_OUT:
        raise Conflict(_l("This person has moved out; enrol them again instead."))
    details: dict[str, Any] = {}
    for field in ("name", "phone", "lives_alone", "wander_risk", "valid_from", "valid_until"):
        if field in changes and getattr(person, field) != changes[field]:
            setattr(person, field, changes[field])
            details[field] = str(changes[field]) if field != "phone" else "changed"
    _check_window(person.valid_from, person.valid_until, "valid_until")
    if "id_document" in changes:
        _apply_document(person, changes["id_document"])
        details["id_document"] = person.id_document_masked
    if "guardian_ids" in changes:
        person.guardians = _guardians(scope, person, changes["guardian_ids"])
        details["guardian_ids"] = changes["guardian_ids"]
    if "status" in changes and changes["status"] != person.status:
        if changes["status"] not in (PersonStatus.ACTIVE, PersonStatus.SUSPENDED):
            raise _field_error("status", _l("Set active or suspended; move-out is DELETE."))
        person.status = changes["status"]
        details["status"] = person.status.value
    if details:
        audit.record(
            scope.user,
            "person.update",
            community_id=person.community_id,
            target=person,
            details=details,
        )
    return person


def _like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE`` with ``\\`` as the escape: the text's ``%`` and ``_`` are letters."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_people(
    scope: Scope,
    community_id: str,
    *,
    q: str | None = None,
    role: PersonRole | None = None,
    status: PersonStatus | None = None,
    unit_id: str | None = None,
    building_id: str | None = None,
) -> Select[tuple[Person]]:
    """The people of a community the caller may see, by name then id; each filter given narrows.

    ``q`` is found anywhere in the name or the phone, in any case; ``%`` and ``_`` in it are
    plain characters, not wildcards. ``role``, ``unit_id`` and ``building_id`` match any of a
    person's memberships. The API's list and the staff pages' list both ask this.

    People are the property office's: an officer or a resident who sees the community gets
    403 (``Scope.require_read``), not an empty list that would say it has nobody.
    """
    scope.require_read(Person)
    query = scope.query(Person).where(Person.community_id == community_id)
    if q:
        pattern = _like_pattern(q)
        query = query.where(
            or_(Person.name.ilike(pattern, escape="\\"), Person.phone.ilike(pattern, escape="\\"))
        )
    if status:
        query = query.where(Person.status == status)
    members = select(Membership.person_id)
    if role:
        members = members.where(Membership.role == role)
    if unit_id:
        members = members.where(Membership.unit_id == unit_id)
    if building_id:
        members = members.where(
            Membership.unit_id.in_(select(Unit.id).where(Unit.building_id == building_id))
        )
    if members.whereclause is not None:
        query = query.where(Person.id.in_(members))
    return query.order_by(Person.name, Person.id)


def roles_of(person_id: str) -> list[Membership]:
    return list(db.session.scalars(select(Membership).where(Membership.person_id == person_id)))


def erase_biometrics(person: Person) -> int:
    """Delete every face template of ``person`` (photos included); return how many."""
    templates = list(
        db.session.scalars(select(FaceTemplate).where(FaceTemplate.person_id == person.id))
    )
    for template in templates:
        record_change(template.community_id, template.id, template.person_id, "remove")
        db.session.delete(template)
    return len(templates)


def _disable_credentials(person_id: str, now: datetime) -> None:
    for model in (Card, Vehicle, RfidTag):
        db.session.execute(
            update(model)
            .where(model.person_id == person_id, model.disabled_at.is_(None))
            .values(disabled_at=now)
        )


def _revoke_passes_issued_by(person_id: str, now: datetime) -> int:
    result = db.session.execute(
        update(VisitorPass)
        .where(
            VisitorPass.issued_by_person_id == person_id,
            VisitorPass.revoked_at.is_(None),
            VisitorPass.valid_until > now,
        )
        .values(revoked_at=now)
    )
    return result.rowcount or 0


def move_out(scope: Scope, person_id: str) -> Person:
    """Biometrics erased, credentials disabled, leases ended; history kept without biometrics."""
    person = scope.writable(Person, person_id)
    if person.status is PersonStatus.MOVED_OUT:
        return person
    now = utcnow()
    erased = erase_biometrics(person)
    _disable_credentials(person.id, now)
    revoked = _revoke_passes_issued_by(person.id, now)
    db.session.execute(
        update(Lease)
        .where(Lease.person_id == person.id, Lease.ends_at > now)
        .values(ends_at=now, ended_early_at=now, closed_at=now)
    )
    db.session.execute(
        update(Membership).where(Membership.person_id == person.id).values(valid_until=now)
    )
    db.session.execute(
        update(Consent)
        .where(Consent.person_id == person.id, Consent.withdrawn_at.is_(None))
        .values(withdrawn_at=now)
    )
    disable_accounts_of(person.id, now)
    person.status = PersonStatus.MOVED_OUT
    person.moved_out_at = now
    audit.record(
        scope.user,
        "person.move_out",
        community_id=person.community_id,
        target=person,
        details={"templates_erased": erased, "passes_revoked": revoked},
    )
    return person


# Leases -------------------------------------------------------------------------------------


def _new_lease(person: Person, unit: Unit, data: dict[str, Any]) -> Lease:
    """A lease of ``unit``, found in the person's community by the caller."""
    _check_window(data["starts_at"], data["ends_at"], "lease")
    lease = Lease(
        community_id=person.community_id,
        person_id=person.id,
        unit_id=unit.id,
        starts_at=data["starts_at"],
        ends_at=data["ends_at"],
    )
    db.session.add(lease)
    db.session.flush()
    return lease


def create_lease(scope: Scope, person_id: str, data: dict[str, Any]) -> Lease:
    """A new lease for a tenant (a renewal that starts later, or a move to another unit)."""
    person = scope.writable(Person, person_id)
    roles = {m.role for m in roles_of(person.id)}
    if PersonRole.TENANT not in roles:
        raise Conflict(_l("Only tenants have leases."))
    unit = _in_community(scope, Unit, data["unit_id"], person.community_id, "unit_id")
    lease = _new_lease(person, unit, data)
    if not db.session.scalar(
        select(Membership.id).where(
            Membership.person_id == person.id,
            Membership.unit_id == unit.id,
            Membership.role == PersonRole.TENANT,
        )
    ):
        db.session.add(
            Membership(
                community_id=person.community_id,
                person_id=person.id,
                unit_id=unit.id,
                role=PersonRole.TENANT,
            )
        )
    audit.record(
        scope.user,
        "lease.create",
        community_id=person.community_id,
        target=lease,
        details={"starts_at": lease.starts_at.isoformat(), "ends_at": lease.ends_at.isoformat()},
    )
    return lease


def update_lease(scope: Scope, lease_id: str, changes: dict[str, Any]) -> Lease:
    """Renew (a later ``ends_at``) or end early (``end_now``); both audited."""
    lease = scope.writable(Lease, lease_id)
    now = utcnow()
    if lease.closed_at is not None:
        raise Conflict(_l("This lease has ended; create a new one."))
    if changes.get("end_now"):
        lease.ends_at = lease.ended_early_at = now
        action, details = "lease.end_early", {"ends_at": now.isoformat()}
    elif "ends_at" in changes:
        _check_window(lease.starts_at, changes["ends_at"], "ends_at")
        action = "lease.renew" if changes["ends_at"] > lease.ends_at else "lease.shorten"
        details = {"from": lease.ends_at.isoformat(), "to": changes["ends_at"].isoformat()}
        lease.ends_at = changes["ends_at"]
    else:
        raise Invalid(_l("Give ends_at to renew, or end_now: true to end the lease now."))
    audit.record(scope.user, action, community_id=lease.community_id, target=lease, details=details)
    return lease


def close_ended_leases(now: datetime | None = None) -> list[Lease]:
    """The lease-end cascade, for every lease that has ended and was not closed yet.

    The tenant's cards, plates and tags are disabled, the visitor passes they issued
    revoked, and their face templates erased unless they stay in the community under
    another role; staff see it in the audit log. Access itself already ended at
    ``ends_at``: the policy checks the lease at decision time, whatever this job does.
    """
    now = now or utcnow()
    due = list(
        db.session.scalars(select(Lease).where(Lease.ends_at <= now, Lease.closed_at.is_(None)))
    )
    for lease in due:
        lease.closed_at = now
        person = db.session.get(Person, lease.person_id)
        if _still_leasing(person.id, now):
            continue  # a renewal lease carries on: nothing to take away
        _disable_credentials(person.id, now)
        revoked = _revoke_passes_issued_by(person.id, now)
        other_roles = [
            m
            for m in roles_of(person.id)
            if m.role is not PersonRole.TENANT and (m.valid_until is None or m.valid_until > now)
        ]
        erased = 0 if other_roles else erase_biometrics(person)
        # The tenant's login ends with the lease (one who stays under another role keeps it).
        disabled = 0 if other_roles else disable_accounts_of(person.id, now)
        audit.record(
            None,
            "lease.ended",
            community_id=lease.community_id,
            target=lease,
            details={
                "person_id": person.id,
                "passes_revoked": revoked,
                "templates_erased": erased,
                "accounts_disabled": disabled,
                "kept_roles": [m.role.value for m in other_roles],
            },
        )
    return due


def disable_accounts_of(person_id: str, now: datetime) -> int:
    """Disable the accounts acting as this person (their lease ended, they moved out);
    every sign-in of theirs ends with it."""
    users = list(
        db.session.scalars(
            select(User).where(User.person_id == person_id, User.disabled_at.is_(None))
        )
    )
    for user in users:
        user.disabled_at = now
        end_sign_ins(user)
    return len(users)


def _still_leasing(person_id: str, now: datetime) -> bool:
    return (
        db.session.scalar(select(Lease.id).where(Lease.person_id == person_id, Lease.ends_at > now))
        is not None
    )


# Workers ------------------------------------------------------------------------------------


def _new_permit(scope: Scope, person: Person, data: dict[str, Any]) -> WorkerPermit:
    _check_window(data["valid_from"], data["valid_until"], "worker.valid_until")
    points = [
        _in_community(scope, AccessPoint, i, person.community_id, "worker.access_point_ids")
        for i in data["access_point_ids"]
    ]
    sponsor_user = sponsor_person = None
    if data.get("sponsor_person_id"):
        sponsor_person = _in_community(
            scope,
            Person,
            data["sponsor_person_id"],
            person.community_id,
            "worker.sponsor_person_id",
        ).id
    else:
        sponsor_user = scope.user.id  # the staff member enrolling them vouches for them
    permit = WorkerPermit(
        community_id=person.community_id,
        person_id=person.id,
        tag=data["tag"],
        sponsor_user_id=sponsor_user,
        sponsor_person_id=sponsor_person,
        schedule=_schedule(data.get("schedule"), "worker.schedule"),
        valid_from=data["valid_from"],
        valid_until=data["valid_until"],
    )
    permit.access_points = points
    db.session.add(permit)
    db.session.flush()
    return permit


def update_permit(scope: Scope, permit_id: str, changes: dict[str, Any]) -> WorkerPermit:
    permit = scope.writable(WorkerPermit, permit_id)
    if "access_point_ids" in changes:
        permit.access_points = [
            _in_community(scope, AccessPoint, i, permit.community_id, "access_point_ids")
            for i in changes["access_point_ids"]
        ]
    if "schedule" in changes:
        permit.schedule = _schedule(changes["schedule"], "schedule")
    for field in ("tag", "valid_from", "valid_until"):
        if field in changes:
            setattr(permit, field, changes[field])
    _check_window(permit.valid_from, permit.valid_until, "valid_until")
    audit.record(
        scope.user,
        "worker_permit.update",
        community_id=permit.community_id,
        target=permit,
        details={k: str(v) for k, v in changes.items()},
    )
    return permit


# Credentials --------------------------------------------------------------------------------

CREDENTIALS = {"cards": Card, "vehicles": Vehicle, "tags": RfidTag}
_KEY_FIELD = {Card: "uid", Vehicle: "plate", RfidTag: "epc"}


def add_credential(scope: Scope, person_id: str, model: type, data: dict[str, Any]) -> Any:
    """An IC card, vehicle or RFID tag for ``person`` (values already normalised)."""
    person = scope.writable(Person, person_id)
    if person.status is PersonStatus.MOVED_OUT:
        raise Conflict(_l("This person has moved out."))
    key = _KEY_FIELD[model]
    if db.session.scalar(
        select(model.id).where(
            model.community_id == person.community_id, getattr(model, key) == data[key]
        )
    ):
        raise Conflict(_ALREADY_REGISTERED[key])
    _check_window(data.get("valid_from"), data.get("valid_until"), "valid_until")
    row = model(community_id=person.community_id, person_id=person.id, **data)
    db.session.add(row)
    db.session.flush()
    audit.record(
        scope.user,
        f"{model.__tablename__}.create",
        community_id=person.community_id,
        target=row,
        details={key: data[key], "person_id": person.id}
        | ({"guard": True} if data.get("guard") else {}),
    )
    return row


def update_credential(
    scope: Scope, model: type, credential_id: str, changes: dict[str, Any]
) -> Any:
    row = scope.writable(model, credential_id)
    if "disabled" in changes:
        row.disabled_at = utcnow() if changes["disabled"] else None
    for field in ("valid_from", "valid_until"):
        if field in changes:
            setattr(row, field, changes[field])
    if "guard" in changes:  # RfidTag only (its patch schema): counts at patrol checkpoints
        row.guard = changes["guard"]
    _check_window(row.valid_from, row.valid_until, "valid_until")
    audit.record(
        scope.user,
        f"{model.__tablename__}.update",
        community_id=row.community_id,
        target=row,
        details={k: str(v) for k, v in changes.items()},
    )
    return row


# Consent ------------------------------------------------------------------------------------


def record_consent(scope: Scope, person_id: str, purpose: str) -> Consent:
    person = scope.writable(Person, person_id)
    existing = active_consent(person.id, purpose)
    if existing is not None:
        return existing
    consent = Consent(
        community_id=person.community_id,
        person_id=person.id,
        purpose=purpose,
        recorded_by_id=scope.user.id,
        granted_at=utcnow(),
    )
    db.session.add(consent)
    db.session.flush()
    audit.record(
        scope.user,
        "consent.grant",
        community_id=person.community_id,
        target=person,
        details={"purpose": purpose},
    )
    return consent


def withdraw_consent(scope: Scope, person_id: str, purpose: str) -> int:
    """Withdraw consent; for face recognition the templates go with it. Returns erased count."""
    person = scope.writable(Person, person_id)
    consent = active_consent(person.id, purpose)
    if consent is None:
        raise Conflict(_l("No active consent for %(purpose)s.", purpose=LazyString(word, purpose)))
    consent.withdrawn_at = utcnow()
    erased = erase_biometrics(person) if purpose == FACE_PURPOSE else 0
    audit.record(
        scope.user,
        "consent.withdraw",
        community_id=person.community_id,
        target=person,
        details={"purpose": purpose, "templates_erased": erased},
    )
    return erased


def active_consent(person_id: str, purpose: str) -> Consent | None:
    return db.session.scalar(
        select(Consent).where(
            Consent.person_id == person_id,
            Consent.purpose == purpose,
            Consent.withdrawn_at.is_(None),
        )
    )
