"""Onboarding without the command line.

- **Invite a resident**: staff give an enrolled person a login (a username or a phone
  number) and hand over a one-time activation link; the resident sets a password on the
  first visit (``invite_resident``, ``activate``).
- **Self-registration**: staff print a community's (or a building's) invitation link in the
  lobby; whoever scans it fills in who they are, consents to face recognition separately,
  takes a selfie (the same quality check as staff enrolment) and may add an ID document
  (``submit_registration``). The request waits for staff, who approve (the person, their
  membership and lease, their face and their account are created at once), edit or reject
  it with a reason. Nothing grants access before approval. The registrant follows their
  request on a page of its own, which becomes the activation link once approved.

Secrets in links (activation, a registrant's status page) are stored as SHA-256 only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gatekeeper import faces
from gatekeeper.identity import DocumentError, mask_document, validate_document
from gatekeeper.vocabulary import PersonRole, PersonStatus
from server.core import audit, crypto
from server.core.auth import end_sign_ins, hash_password
from server.core.errors import Conflict, DomainError, Invalid, NotFound
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccountActivation,
    Building,
    Community,
    Consent,
    Person,
    RegistrationLink,
    RegistrationRequest,
    RegistrationStatus,
    Unit,
    User,
    UserRole,
    utcnow,
)
from server.people import service
from server.people.faces import (
    check_not_duplicate,
    checked_photo,
    enrol_checked_template,
    measurements,
)

# How long an activation link works.
ACTIVATION_DAYS = 14
# Roles someone may ask for through the lobby's link (workers, elders and children are
# enrolled by staff).
SELF_REGISTRATION_ROLES = (PersonRole.OWNER, PersonRole.RESIDENT, PersonRole.TENANT)
# Roles of people who may get a resident account (they live in a unit).
ACCOUNT_ROLES = frozenset(
    {PersonRole.OWNER, PersonRole.RESIDENT, PersonRole.TENANT, PersonRole.ELDER}
)
MIN_PASSWORD_LENGTH = 8
LINK_CODE_BYTES = 9  # 12 URL-safe characters: short enough to type from a poster


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(24)


# Resident accounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    """A resident account waiting for its first password, and the link that sets it (the
    link's secret exists only here: the database keeps its hash)."""

    user: User
    token: str
    expires_at: datetime


def account_of(person_id: str) -> User | None:
    """The resident account that acts as this person, if any."""
    return db.session.scalar(
        select(User).where(User.person_id == person_id, User.role == UserRole.RESIDENT)
    )


def pending_activation(user: User) -> AccountActivation | None:
    """The activation link still open for ``user`` (not used, not expired)."""
    return db.session.scalar(
        select(AccountActivation)
        .where(
            AccountActivation.user_id == user.id,
            AccountActivation.used_at.is_(None),
            AccountActivation.expires_at > utcnow(),
        )
        .order_by(AccountActivation.created_at.desc())
    )


def _home_unit(person: Person) -> Unit | None:
    """The unit a person lives in now (their first current membership with a unit)."""
    now = utcnow()
    for membership in sorted(person.memberships, key=lambda m: m.created_at):
        current = membership.valid_until is None or membership.valid_until > now
        if membership.unit_id and current and membership.role in ACCOUNT_ROLES:
            return db.session.get(Unit, membership.unit_id)
    return None


def _open_activation(user: User, community_id: str, by: User | None, token_hash: str) -> datetime:
    """Store an activation link (its secret's hash) for ``user``, ending any earlier open
    one; when it expires."""
    now = utcnow()
    db.session.execute(
        update(AccountActivation)
        .where(AccountActivation.user_id == user.id, AccountActivation.used_at.is_(None))
        .values(expires_at=now)
    )
    expires_at = now + timedelta(days=ACTIVATION_DAYS)
    db.session.add(
        AccountActivation(
            community_id=community_id,
            user_id=user.id,
            token_hash=token_hash,
            created_by_id=by.id if by else None,
            expires_at=expires_at,
        )
    )
    return expires_at


def _issue_activation(user: User, community_id: str, by: User | None) -> Invitation:
    """A new activation link for ``user``, its secret returned this once."""
    token = _new_secret()
    return Invitation(user, token, _open_activation(user, community_id, by, _sha256(token)))


def _resident_account(person: Person, unit_id: str, username: str) -> User:
    """A resident login acting as ``person`` for ``unit_id``, not usable until activated."""
    user = User(
        username=username,
        role=UserRole.RESIDENT,
        display_name=person.name,
        # Nobody knows this password: the account opens with the activation link.
        password_hash=hash_password(_new_secret()),
        password_set=False,
        person_id=person.id,
        unit_id=unit_id,
    )
    db.session.add(user)
    db.session.flush()
    return user


def _check_username(username: str, field: str = "username") -> str:
    username = username.strip()
    if not username:
        raise Invalid(_l("Give a username or phone number."), errors={field: [_l("Required.")]})
    if len(username) > 64 or any(c.isspace() for c in username):
        message = _l("At most 64 characters, without spaces.")
        raise Invalid(message, errors={field: [message]})
    if db.session.scalar(select(User.id).where(User.username == username)):
        message = _l("The username %(username)s is taken.", username=username)
        raise Conflict(message, errors={field: [message]})
    return username


def invite_resident(scope: Scope, person_id: str, username: str) -> Invitation:
    """Create the person's resident login and a one-time link to set its password.

    Asked again for a person whose account was never activated, it makes a fresh link
    (the old one stops working), for a resident who lost the first.
    """
    person = scope.writable(Person, person_id)
    scope.require_write(User)
    if person.status is PersonStatus.MOVED_OUT:
        raise Conflict(_l("This person has moved out."))
    user = account_of(person.id)
    if user is not None:
        if user.disabled:
            raise Conflict(_l("This person's account is disabled."))
        if user.password_set:
            raise Conflict(
                _l("This person already has an account: %(username)s.", username=user.username)
            )
        invitation = _issue_activation(user, person.community_id, scope.user)
        audit.record(
            scope.user,
            "user.invite_again",
            community_id=person.community_id,
            target=user,
            details={"person_id": person.id},
        )
        return invitation
    unit = _home_unit(person)
    if unit is None:
        raise Conflict(_l("Only people who live in a unit can have a resident account."))
    user = _resident_account(person, unit.id, _check_username(username))
    invitation = _issue_activation(user, person.community_id, scope.user)
    audit.record(
        scope.user,
        "user.invite",
        community_id=person.community_id,
        target=user,
        details={"person_id": person.id, "unit_id": unit.id, "username": user.username},
    )
    return invitation


def activation_by_token(token: str) -> AccountActivation:
    """The open activation link with this secret; ``NotFound`` when it is unknown, used,
    expired or its account disabled (all answer alike)."""
    activation = db.session.scalar(
        select(AccountActivation).where(AccountActivation.token_hash == _sha256(token))
    )
    user = db.session.get(User, activation.user_id) if activation is not None else None
    if (
        activation is None
        or user is None
        or activation.used_at is not None
        or activation.expires_at <= utcnow()
        or user.disabled
    ):
        raise NotFound(
            _l("This link is not valid any more. Ask the property office for a new one.")
        )
    return activation


def check_new_password(password: str, confirmation: str) -> dict[str, list[Any]]:
    """Every problem with a new password at once (field -> messages)."""
    errors: dict[str, list[Any]] = {}
    if len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = [_l("At least %(count)s characters.", count=MIN_PASSWORD_LENGTH)]
    elif len(password) > 256:
        errors["password"] = [_l("At most 256 characters.")]
    if password != confirmation:
        errors["confirmation"] = [_l("The two passwords differ.")]
    return errors


def activate(token: str, password: str, confirmation: str) -> User:
    """Set the first password of an invited account; the link is used up."""
    activation = activation_by_token(token)
    errors = check_new_password(password, confirmation)
    if errors:
        raise Invalid(_l("Choose another password."), errors=errors)
    user = db.session.get(User, activation.user_id)
    user.password_hash = hash_password(password)
    user.password_set = True
    activation.used_at = utcnow()
    end_sign_ins(user)
    audit.record(user, "user.activate", community_id=activation.community_id, target=user)
    return user


# Registration links --------------------------------------------------------------------------


def create_registration_link(
    scope: Scope, community_id: str, building_id: str | None = None
) -> RegistrationLink:
    community = scope.get(Community, community_id)
    scope.require_write(Person)
    building = None
    if building_id:
        building = db.session.scalar(
            scope.query(Building).where(
                Building.id == building_id, Building.community_id == community.id
            )
        )
        if building is None:
            message = _l("No such building in this community.")
            raise Invalid(message, errors={"building_id": [message]})
    link = RegistrationLink(
        community_id=community.id,
        code=secrets.token_urlsafe(LINK_CODE_BYTES),
        building_id=building.id if building else None,
        created_by_id=scope.user.id,
    )
    db.session.add(link)
    db.session.flush()
    audit.record(
        scope.user,
        "registration_link.create",
        community_id=community.id,
        target=link,
        details={"building_id": link.building_id},
    )
    return link


def disable_registration_link(scope: Scope, link_id: str) -> RegistrationLink:
    link = scope.writable(RegistrationLink, link_id)
    if link.disabled_at is None:
        link.disabled_at = utcnow()
        audit.record(
            scope.user, "registration_link.disable", community_id=link.community_id, target=link
        )
    return link


def link_by_code(code: str) -> RegistrationLink:
    """The enabled registration link with this code (``NotFound`` otherwise)."""
    link = db.session.scalar(select(RegistrationLink).where(RegistrationLink.code == code))
    if link is None or link.disabled_at is not None:
        raise NotFound(_l("This invitation is not valid. Ask the property office for a new one."))
    return link


def units_for(link: RegistrationLink) -> list[tuple[Building, list[Unit]]]:
    """The units a registrant may choose from: the link's building, or the community's."""
    query = select(Building).where(Building.community_id == link.community_id)
    if link.building_id:
        query = query.where(Building.id == link.building_id)
    buildings = list(db.session.scalars(query.order_by(Building.name)))
    units = list(
        db.session.scalars(
            select(Unit)
            .where(Unit.building_id.in_([b.id for b in buildings]))
            .order_by(Unit.number)
        )
    )
    return [(b, [u for u in units if u.building_id == b.id]) for b in buildings]


# Registration requests -----------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """A request as it was filed, and the secret of the registrant's own page."""

    request: RegistrationRequest
    token: str


def _add(errors: dict[str, list[Any]], field: str, message: Any) -> None:
    errors.setdefault(field, []).append(message)


def _check_answers(
    community_id: str,
    building_id: str | None,
    data: dict[str, Any],
    errors: dict[str, list[Any]],
) -> tuple[Unit | None, PersonRole | None]:
    """Name, phone, unit, role and lease: every problem recorded, none raised."""
    name = (data.get("name") or "").strip()
    if not name:
        _add(errors, "name", _l("Enter your name."))
    elif len(name) > 80:
        _add(errors, "name", _l("At most 80 characters."))
    phone = (data.get("phone") or "").strip()
    if not service.PHONE_PATTERN.fullmatch(phone):
        _add(errors, "phone", _l("Enter a mobile phone number (5 to 20 digits)."))
    unit = None
    if not data.get("unit_id"):
        _add(errors, "unit_id", _l("Choose your unit."))
    else:
        unit = db.session.scalar(
            select(Unit).where(Unit.id == data["unit_id"], Unit.community_id == community_id)
        )
        if unit is None or (building_id and unit.building_id != building_id):
            _add(errors, "unit_id", _l("Choose a unit from the list."))
            unit = None
    role = next((r for r in SELF_REGISTRATION_ROLES if r.value == data.get("role")), None)
    if role is None:
        _add(errors, "role", _l("Choose owner, family member or tenant."))
        role = None
    starts, ends = data.get("lease_starts_at"), data.get("lease_ends_at")
    if role is PersonRole.TENANT:
        if starts is None:
            _add(errors, "lease_starts_at", _l("A tenant gives the lease's first day."))
        if ends is None:
            _add(errors, "lease_ends_at", _l("A tenant gives the lease's last day."))
        if starts is not None and ends is not None and ends <= starts:
            _add(errors, "lease_ends_at", _l("The end must come after the start."))
        if ends is not None and ends <= utcnow():
            _add(errors, "lease_ends_at", _l("This lease has already ended."))
    return unit, role


def _check_document(data: dict[str, Any], errors: dict[str, list[Any]]) -> tuple[str, str] | None:
    """The optional ID document as (type, normalised number), or None."""
    number = (data.get("document_number") or "").strip()
    if not number:
        return None
    doc_type = data.get("document_type") or "resident_id"
    try:
        return doc_type, validate_document(doc_type, number)
    except DocumentError as error:
        _add(errors, "document_number", service.document_problem_words(error))
        return None


def _check_selfie(
    consent: bool, selfie: bytes | None, errors: dict[str, list[Any]]
) -> faces.EnrolmentResult | None:
    """The selfie's enrolment check (only with consent; the photo itself is never kept)."""
    if not selfie:
        return None
    if not consent:
        _add(
            errors,
            "face_consent",
            _l("Agree to face recognition to send a photo, or leave the photo out."),
        )
        return None
    try:
        return checked_photo(selfie, field="selfie")
    except DomainError as error:
        for message in (error.extensions.get("errors") or {}).get("selfie", [error.detail]):
            _add(errors, "selfie", message)
        return None


def submit_registration(
    link: RegistrationLink, data: dict[str, Any], selfie: bytes | None
) -> Registration:
    """File a request from the lobby's link: every problem is reported at once, and a
    request that is filed waits for staff (nothing grants access yet)."""
    errors: dict[str, list[Any]] = {}
    unit, role = _check_answers(link.community_id, link.building_id, data, errors)
    document = _check_document(data, errors)
    consent = bool(data.get("face_consent"))
    photo = _check_selfie(consent, selfie, errors)
    phone = (data.get("phone") or "").strip()
    if phone and _pending_for_phone(link.community_id, phone) is not None:
        _add(
            errors,
            "phone",
            _l("A request with this phone number is already waiting for the property office."),
        )
    if errors:
        raise Invalid(_l("Some answers need another look."), errors=errors)
    assert unit is not None and role is not None  # noqa: S101 - no errors means both were found
    token = _new_secret()
    now = utcnow()
    request = RegistrationRequest(
        community_id=link.community_id,
        link_id=link.id,
        unit_id=unit.id,
        name=data["name"].strip(),
        phone=phone,
        role=role,
        lease_starts_at=data.get("lease_starts_at") if role is PersonRole.TENANT else None,
        lease_ends_at=data.get("lease_ends_at") if role is PersonRole.TENANT else None,
        face_consent_at=now if consent else None,
        template_encrypted=(
            crypto.encrypt(faces.template_to_bytes(photo.template)) if photo else None
        ),
        template_quality=measurements(photo.measurements) if photo else None,
        status_token_hash=_sha256(token),
    )
    if document is not None:
        doc_type, number = document
        request.id_document_type = doc_type
        request.id_document_encrypted = crypto.encrypt_text(number)
        request.id_document_masked = mask_document(doc_type, number)
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError:  # the same phone filed twice at once: one of them wins
        db.session.rollback()
        message = _l("A request with this phone number is already waiting for the property office.")
        raise Conflict(message, errors={"phone": [message]}) from None
    audit.record(
        None,
        "registration.submit",
        community_id=link.community_id,
        target=request,
        details={"unit_id": unit.id, "role": role.value, "face": photo is not None},
    )
    return Registration(request, token)


def _pending_for_phone(community_id: str, phone: str) -> RegistrationRequest | None:
    return db.session.scalar(
        select(RegistrationRequest).where(
            RegistrationRequest.community_id == community_id,
            RegistrationRequest.phone == phone,
            RegistrationRequest.status == RegistrationStatus.PENDING,
        )
    )


def request_by_token(token: str) -> RegistrationRequest:
    """The request behind a registrant's own page (``NotFound`` for an unknown secret)."""
    request = db.session.scalar(
        select(RegistrationRequest).where(RegistrationRequest.status_token_hash == _sha256(token))
    )
    if request is None:
        raise NotFound(_l("No such request."))
    return request


def pending_requests(scope: Scope, community_id: str) -> list[RegistrationRequest]:
    community = scope.get(Community, community_id)
    scope.require_read(RegistrationRequest)
    return list(
        db.session.scalars(
            scope.query(RegistrationRequest)
            .where(
                RegistrationRequest.community_id == community.id,
                RegistrationRequest.status == RegistrationStatus.PENDING,
            )
            .order_by(RegistrationRequest.created_at)
        )
    )


@dataclass(frozen=True)
class LookAlike:
    """An enrolled person whose face is too close to a new one, as staff may see them."""

    masked_name: str
    unit: str | None
    distance: float


def look_alike(request: RegistrationRequest) -> LookAlike | None:
    """Who the request's selfie would be confused with at the door, if anyone."""
    if request.template_encrypted is None:
        return None
    template = faces.template_from_bytes(crypto.decrypt(request.template_encrypted))
    try:
        check_not_duplicate(request.community_id, template, None)
    except Conflict as error:
        found = error.extensions["duplicate_of"]
        return LookAlike(found["name"], found.get("unit"), found["distance"])
    return None


_EDITABLE = ("name", "phone", "unit_id", "role", "lease_starts_at", "lease_ends_at")


def _pending(scope: Scope, request_id: str) -> RegistrationRequest:
    request = scope.writable(RegistrationRequest, request_id)
    if request.status is not RegistrationStatus.PENDING:
        raise Conflict(_l("This request was already decided."))
    return request


def edit_request(scope: Scope, request_id: str, changes: dict[str, Any]) -> RegistrationRequest:
    """Staff correct what the registrant typed (a misspelt name, the wrong unit)."""
    request = _pending(scope, request_id)
    merged = {field: getattr(request, field) for field in _EDITABLE}
    merged["role"] = request.role.value
    merged.update({k: v for k, v in changes.items() if k in _EDITABLE})
    errors: dict[str, list[Any]] = {}
    unit, role = _check_answers(request.community_id, None, merged, errors)
    phone = merged["phone"].strip()
    other = _pending_for_phone(request.community_id, phone)
    if other is not None and other.id != request.id:
        _add(
            errors,
            "phone",
            _l("A request with this phone number is already waiting for the property office."),
        )
    if errors:
        raise Invalid(_l("Some answers need another look."), errors=errors)
    request.name, request.phone, request.unit_id, request.role = (
        merged["name"].strip(),
        phone,
        unit.id,
        role,
    )
    tenant = role is PersonRole.TENANT
    request.lease_starts_at = merged["lease_starts_at"] if tenant else None
    request.lease_ends_at = merged["lease_ends_at"] if tenant else None
    audit.record(
        scope.user,
        "registration.edit",
        community_id=request.community_id,
        target=request,
        details={"fields": sorted(set(changes) & set(_EDITABLE))},
    )
    return request


def approve(scope: Scope, request_id: str) -> RegistrationRequest:
    """Enrol the registrant: person, membership (and lease), consent and face, and their
    account, whose activation link is the registrant's own page."""
    request = _pending(scope, request_id)
    data: dict[str, Any] = {
        "role": request.role,
        "name": request.name,
        "phone": request.phone,
        "unit_id": request.unit_id,
    }
    if request.role is PersonRole.TENANT:
        data["lease"] = {"starts_at": request.lease_starts_at, "ends_at": request.lease_ends_at}
    if request.id_document_encrypted is not None:
        data["id_document"] = {
            "type": request.id_document_type,
            "number": crypto.decrypt_text(request.id_document_encrypted),
        }
    template = (
        faces.template_from_bytes(crypto.decrypt(request.template_encrypted))
        if request.template_encrypted is not None
        else None
    )
    if template is not None:
        check_not_duplicate(request.community_id, template, None)
    username = _check_username(request.phone, field="phone")
    person = service.create_person(scope, request.community_id, data)
    if template is not None:
        # The registrant consented on the form, before staff saw the request.
        db.session.add(
            Consent(
                community_id=person.community_id,
                person_id=person.id,
                purpose=service.FACE_PURPOSE,
                recorded_by_id=scope.user.id,
                granted_at=request.face_consent_at or utcnow(),
            )
        )
        db.session.flush()
        enrol_checked_template(scope, person.id, template, request.template_quality)
    user = _resident_account(person, request.unit_id, username)
    # The registrant's own page (its secret) is the activation link: nothing to hand over.
    _open_activation(user, request.community_id, scope.user, request.status_token_hash)
    request.status = RegistrationStatus.APPROVED
    request.reviewed_by_id, request.reviewed_at = scope.user.id, utcnow()
    request.person_id, request.user_id = person.id, user.id
    # The template now lives with the person; the document with the person too.
    request.template_encrypted = request.id_document_encrypted = None
    audit.record(
        scope.user,
        "registration.approve",
        community_id=request.community_id,
        target=request,
        details={"person_id": person.id, "user_id": user.id, "face": template is not None},
    )
    return request


def reject(scope: Scope, request_id: str, reason: str) -> RegistrationRequest:
    """Refuse a request with a reason the registrant reads; their selfie's template and
    document are erased at once."""
    request = _pending(scope, request_id)
    reason = (reason or "").strip()
    if not reason:
        message = _l("Say why, for the registrant.")
        raise Invalid(message, errors={"reason": [message]})
    if len(reason) > 200:
        message = _l("At most 200 characters.")
        raise Invalid(message, errors={"reason": [message]})
    request.status = RegistrationStatus.REJECTED
    request.rejection_reason = reason
    request.reviewed_by_id, request.reviewed_at = scope.user.id, utcnow()
    request.template_encrypted = request.id_document_encrypted = None
    request.template_quality = None
    audit.record(
        scope.user, "registration.reject", community_id=request.community_id, target=request
    )
    return request


def community_of(link: RegistrationLink) -> Community:
    """The community a registration link belongs to."""
    return db.session.get(Community, link.community_id)
