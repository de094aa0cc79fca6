"""Staff pages for people: the list, a person's page with every action, the enrolment form.

Times are shown and entered in the community's time zone: a ``datetime-local`` input is a
wall-clock time there, turned into an aware UTC datetime before any service sees it. Each
action is a CSRF-protected POST that calls the service, commits, flashes and redirects
back; only the enrolment form re-renders itself (422) with the messages next to the fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext, pgettext
from flask_login import login_required
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.faces import (
    FaceQualityReason,
    TemplateError,
    template_from_bytes,
    template_to_bytes,
)
from gatekeeper.identity import DocumentError, DocumentProblem, DocumentType, validate_document
from gatekeeper.vocabulary import PersonRole
from server.api.schemas import (
    CardSchema,
    PersonSchema,
    RfidTagSchema,
    VehicleSchema,
    WorkerPermitPatchSchema,
)
from server.community import settings as community_settings
from server.core import audit, crypto
from server.core.crypto import DecryptionError
from server.core.errors import DomainError, NotFound
from server.core.plates import checked_plate
from server.core.scope import Scope
from server.core.wording import face_measurement_lines, face_reason_words, word
from server.extensions import db
from server.models import (
    Building,
    Card,
    Community,
    Consent,
    FaceTemplate,
    IdCheck,
    Lease,
    Membership,
    Person,
    PersonStatus,
    RfidTag,
    Unit,
    Vehicle,
    WorkerPermit,
    WorkerTag,
    guardianships,
    utcnow,
)
from server.people import faces
from server.people import service as people
from server.web import bp
from server.web.helpers import (
    access_points_of,
    add_error,
    attempt,
    buildings_of,
    community_rows,
    current_scope,
    error_text,
    flash_error,
    flash_form_errors,
    flash_ok,
    flatten_messages,
    local_input,
    merge_errors,
    read_local,
    schedule_window,
    signed_in_user,
    unit_label,
    user_names,
    zone_of,
)
from server.web.onboarding import account_context

PAGE_SIZE = 50
WEEKDAYS = (_l("Mon"), _l("Tue"), _l("Wed"), _l("Thu"), _l("Fri"), _l("Sat"), _l("Sun"))
# kind in the URL -> model, input schema, key field, normalisation (as the API does it)
_CREDENTIALS: dict[str, tuple[type, type[ma.Schema], str, Callable[[str], str]]] = {
    "cards": (Card, CardSchema, "uid", str.upper),
    "vehicles": (Vehicle, VehicleSchema, "plate", checked_plate),
    "tags": (RfidTag, RfidTagSchema, "epc", str.upper),
}
# The quality verdict of the last upload, shown once on the person page (like a flash).
_FACE_RESULT = "person_face_result"

# Service and schema error keys -> the enrolment form's inputs.
_FORM_FIELD = {
    "name": "name",
    "role": "role",
    "unit_id": "unit_id",
    "phone": "phone",
    "lives_alone": "lives_alone",
    "wander_risk": "wander_risk",
    "id_document": "id_number",
    "id_document.type": "id_type",
    "id_document.number": "id_number",
    "lease": "lease_ends_at",
    "lease.unit_id": "unit_id",
    "lease.starts_at": "lease_starts_at",
    "lease.ends_at": "lease_ends_at",
    "worker": "worker_tag",
    "worker.tag": "worker_tag",
    "worker.access_point_ids": "worker_access_point_ids",
    "worker.valid_from": "worker_valid_from",
    "worker.valid_until": "worker_valid_until",
    "image": "photo",
}
FIELD_LABELS = {
    "form": _l("Enrolment"),
    "name": _l("Name"),
    "role": _l("Role"),
    "unit_id": _l("Unit"),
    "phone": _l("Phone"),
    "id_type": _l("Document type"),
    "id_number": _l("Document number"),
    "lease_starts_at": _l("Lease start"),
    "lease_ends_at": _l("Lease end"),
    "worker_tag": _l("Kind of work"),
    "worker_access_point_ids": _l("Access points"),
    "worker_schedule": _l("Schedule"),
    "worker_valid_from": _l("Permit from"),
    "worker_valid_until": _l("Permit until"),
    "face_consent": _l("Consent to face recognition"),
    "photo": _l("Face photo"),
}
# The phone rule (server.core.wording.PHONE_FORMAT) as a sentence on its own.
_FRIENDLY = {
    "phone": _l("Digits, spaces and dashes, with an optional + in front (5 to 20 characters).")
}
# The two photos of a person-ID match.
_PHOTO_WORDS = {"id_photo": _l("ID card photo"), "live_photo": _l("live photo")}


def _staff_scope() -> Scope:
    """People are the property office's: officers and residents find no such page."""
    scope = current_scope()
    if not scope.can_write(Person):
        raise NotFound(_l("No such page."))
    return scope


def _lease_state(lease: Lease, now: datetime, zone: ZoneInfo) -> dict[str, str]:
    """Where a lease stands, in calendar days of the community's zone."""
    today = now.astimezone(zone).date()
    if lease.ends_at <= now:
        return {"state": "off", "text": _("ended early") if lease.ended_early_at else _("ended")}
    if now < lease.starts_at:
        days = (lease.starts_at.astimezone(zone).date() - today).days
        text = (
            _("starts today")
            if days == 0
            else ngettext("starts in %(num)d day", "starts in %(num)d days", days)
        )
        return {"state": "", "text": text}
    days = (lease.ends_at.astimezone(zone).date() - today).days
    text = _("ends today") if days == 0 else ngettext("%(num)d day left", "%(num)d days left", days)
    return {"state": "on", "text": text}


@bp.app_template_filter("weekly_schedule")
def weekly_schedule(schedule: list[dict[str, Any]] | None) -> str:
    """A stored weekly schedule in words: ``Mon-Fri 08:00-18:00; Sat 22:00-06:00 (next day)``."""
    if not schedule:
        return _("Any time")
    parts = []
    for window in schedule:
        start, end = window["start"], window["end"]
        days = _describe_days(window["days"])
        if end != "24:00" and end < start:
            parts.append(
                _("%(days)s %(start)s-%(end)s (next day)", days=days, start=start, end=end)
            )
        else:
            parts.append(_("%(days)s %(start)s-%(end)s", days=days, start=start, end=end))
    return pgettext("weekly schedule", "; ").join(parts)


def _describe_days(days: Iterable[int]) -> str:
    chosen = sorted(set(days))
    if chosen == list(range(1, 8)):
        return _("Every day")
    runs: list[list[int]] = []
    for day in chosen:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    words = []
    for run in runs:
        if len(run) >= 3:
            words.append(
                pgettext(
                    "weekly schedule",
                    "%(first)s-%(last)s",
                    first=WEEKDAYS[run[0] - 1],
                    last=WEEKDAYS[run[-1] - 1],
                )
            )
        else:
            words.extend(str(WEEKDAYS[day - 1]) for day in run)
    return pgettext("weekly schedule", ", ").join(words)


def _buildings_with_units(scope: Scope, community: Community) -> list[tuple[Building, list[Unit]]]:
    buildings = buildings_of(scope, community.id)
    units = community_rows(scope, Unit, community.id, Unit.number)
    return [(b, [u for u in units if u.building_id == b.id]) for b in buildings]


def _memberships(person_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each person's roles with the unit (building and number) they attach to."""
    rows = db.session.execute(
        select(Membership, Unit, Building)
        .outerjoin(Unit, Unit.id == Membership.unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
        .where(Membership.person_id.in_(person_ids))
        .order_by(Membership.created_at)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for membership, unit, building in rows:
        place = unit_label(building, unit) if unit is not None else None
        out.setdefault(membership.person_id, []).append(
            {
                "role": membership.role,
                "place": place,
                "unit": unit,
                "until": membership.valid_until,
            }
        )
    return out


# The list -------------------------------------------------------------------------------------


@bp.get("/communities/<cid>/people")
@login_required
def people_list(cid: str) -> str:
    scope = _staff_scope()
    community = scope.get(Community, cid)
    zone = zone_of(community)
    args = request.args
    filters = {k: args.get(k, "").strip() for k in ("q", "role", "status", "building", "unit")}
    query = people.search_people(
        scope,
        community.id,
        q=filters["q"],
        role=PersonRole(filters["role"]) if filters["role"] in set(PersonRole) else None,
        status=PersonStatus(filters["status"]) if filters["status"] in set(PersonStatus) else None,
        unit_id=filters["unit"],
        building_id=filters["building"],
    )
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    try:
        page = max(1, int(args.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(page, pages)
    rows = list(db.session.scalars(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
    ids = [p.id for p in rows]
    if ids:  # one record for the page, naming whom it showed (docs/audit.md)
        audit.record_read(
            scope.user, audit.LISTED, "person_list", community_id=community.id, person_ids=ids
        )
    now = utcnow()
    leases: dict[str, dict[str, str]] = {}
    for lease in db.session.scalars(
        select(Lease).where(Lease.person_id.in_(ids)).order_by(Lease.ends_at)
    ):
        leases[lease.person_id] = _lease_state(lease, now, zone)  # the latest-ending one wins
    credentials: dict[str, list[str]] = {}
    for model in (Card, Vehicle, RfidTag):
        counted = db.session.execute(
            select(model.person_id, func.count())
            .where(model.person_id.in_(ids), model.disabled_at.is_(None))
            .group_by(model.person_id)
        )
        for person_id, count in counted:
            credentials.setdefault(person_id, []).append(_credential_count(model, count))
    face_counts = dict(
        db.session.execute(
            select(FaceTemplate.person_id, func.count())
            .where(FaceTemplate.person_id.in_(ids))
            .group_by(FaceTemplate.person_id)
        ).all()
    )
    for person_id, count in face_counts.items():
        credentials.setdefault(person_id, []).append(
            ngettext("%(num)d face", "%(num)d faces", count)
        )
    link_args = {k: v for k, v in filters.items() if v}
    page_html = render_template(
        "people.html",
        community=community,
        people=rows,
        memberships=_memberships(ids),
        leases=leases,
        credentials=credentials,
        filters=filters,
        roles=list(PersonRole),
        statuses=list(PersonStatus),
        buildings=_buildings_with_units(scope, community),
        page=page,
        pages=pages,
        total=total,
        link_args=link_args,
    )
    db.session.commit()  # the record of this read (docs/audit.md)
    return page_html


def _credential_count(model: type, count: int) -> str:
    if model is Card:
        return ngettext("%(num)d card", "%(num)d cards", count)
    if model is Vehicle:
        return ngettext("%(num)d vehicle", "%(num)d vehicles", count)
    return ngettext("%(num)d tag", "%(num)d tags", count)


# The person page -------------------------------------------------------------------------------


@bp.get("/people/<pid>")
@login_required
def person_page(pid: str) -> str:
    scope = current_scope()
    person = scope.get(Person, pid)
    community = db.session.get(Community, person.community_id)
    zone = zone_of(community)
    now = utcnow()

    def of_person(model: type, order: Any) -> list[Any]:
        return list(
            db.session.scalars(
                scope.query(model).where(model.person_id == person.id).order_by(order)  # type: ignore[attr-defined]
            )
        )

    consents = of_person(Consent, Consent.granted_at.desc())
    face_rows = of_person(FaceTemplate, FaceTemplate.created_at)
    checks = of_person(IdCheck, IdCheck.checked_at.desc())[:5]
    leases = of_person(Lease, Lease.starts_at)
    permit = db.session.scalar(scope.query(WorkerPermit).where(WorkerPermit.person_id == person.id))
    memberships = _memberships([person.id]).get(person.id, [])
    roles = {m["role"] for m in memberships}
    wards = list(
        db.session.scalars(
            scope.query(Person)
            .where(
                Person.id.in_(
                    select(guardianships.c.person_id).where(
                        guardianships.c.guardian_id == person.id
                    )
                )
            )
            .order_by(Person.name)
        )
    )
    guardian_choices = list(
        db.session.scalars(
            scope.query(Person)
            .where(
                Person.community_id == person.community_id,
                Person.id != person.id,
                Person.status != PersonStatus.MOVED_OUT,
            )
            .order_by(Person.name)
            .limit(500)
        )
    )
    names = user_names(
        [c.recorded_by_id for c in consents]
        + [c.checked_by_user_id for c in checks]
        + [permit.sponsor_user_id if permit else None]
    )
    sponsor_person = (
        db.session.get(Person, permit.sponsor_person_id)
        if permit and permit.sponsor_person_id
        else None
    )
    face_result = session.pop(_FACE_RESULT, None)
    if face_result and face_result.get("person_id") != person.id:
        face_result = None
    window = (permit.schedule or [None])[0] if permit else None
    buildings = _buildings_with_units(scope, community)
    audit.record_read(scope.user, person, "person_page", community_id=person.community_id)
    page = render_template(
        "person.html",
        community=community,
        person=person,
        zone=zone,
        now=now,
        editable=person.status is not PersonStatus.MOVED_OUT,
        memberships=memberships,
        is_tenant=PersonRole.TENANT in roles,
        document_label=_document_words(person.id_document_type),
        consents=consents,
        face_consent=next(
            (c for c in consents if c.purpose == people.FACE_PURPOSE and c.withdrawn_at is None),
            None,
        ),
        faces=face_rows,
        max_faces=faces.MAX_FACES_PER_PERSON,
        face_quality=face_measurement_lines,
        face_result=face_result,
        checks=checks,
        check_reason=_check_reason,
        credentials={
            "cards": of_person(Card, Card.created_at),
            "vehicles": of_person(Vehicle, Vehicle.created_at),
            "tags": of_person(RfidTag, RfidTag.created_at),
        },
        leases=[(lease, _lease_state(lease, now, zone)) for lease in leases],
        buildings=buildings,
        unit_labels={u.id: unit_label(b, u) for b, units in buildings for u in units},
        tenant_unit_id=next(
            (m["unit"].id for m in memberships if m["role"] is PersonRole.TENANT and m["unit"]),
            None,
        ),
        permit=permit,
        permit_window=window,
        sponsor_person=sponsor_person,
        access_points=access_points_of(scope, person.community_id),
        worker_tags=list(WorkerTag),
        weekdays=WEEKDAYS,
        guardians=person.guardians,
        guardian_choices=[p for p in guardian_choices if p not in person.guardians],
        wards=wards,
        names=names,
        local_input=lambda value: local_input(value, zone),
        **account_context(person),
    )
    db.session.commit()  # the record of this read (docs/audit.md)
    return page


def _document_words(value: str | None) -> str:
    """A stored document type in words."""
    try:
        return word(DocumentType(value))
    except ValueError:
        return value or ""


def _check_reason(reason: str | None) -> str:
    """Why a person-ID match could not compare (``live_photo:no_face``), in words."""
    if not reason:
        return ""
    photo, _sep, cause = reason.partition(":")
    return _(
        "%(photo)s: %(reason)s",
        photo=_PHOTO_WORDS.get(photo, photo),
        reason=face_reason_words(cause),
    )


def _back(person_id: str, anchor: str | None = None) -> Response:
    return redirect(url_for("web.person_page", pid=person_id, _anchor=anchor))


def _upload(name: str) -> bytes | None:
    upload = request.files.get(name)
    if upload is None or not upload.filename:
        return None
    return upload.read()


@bp.post("/people/<pid>/status")
@login_required
def person_set_status(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    try:
        status = PersonStatus(request.form.get("status", ""))
    except ValueError:
        abort(400)
    attempt(
        lambda: people.update_person(scope, person.id, {"status": status}),
        _("%(name)s is now %(status)s.", name=person.name, status=word(status)),
    )
    return _back(person.id)


@bp.post("/people/<pid>/move-out")
@login_required
def person_move_out(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    attempt(
        lambda: people.move_out(scope, person.id),
        _(
            "%(name)s has moved out: faces erased, credentials disabled, leases ended.",
            name=person.name,
        ),
    )
    return _back(person.id)


@bp.post("/people/<pid>/consent")
@login_required
def person_record_consent(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    attempt(
        lambda: people.record_consent(scope, person.id, people.FACE_PURPOSE),
        _("Consent to face recognition recorded."),
    )
    return _back(person.id, "consent")


@bp.post("/people/<pid>/consent/withdraw")
@login_required
def person_withdraw_consent(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    attempt(
        lambda: people.withdraw_consent(scope, person.id, people.FACE_PURPOSE),
        lambda erased: ngettext(
            "Consent withdrawn; %(num)d face photo erased.",
            "Consent withdrawn; %(num)d face photos erased.",
            erased,
        ),
    )
    return _back(person.id, "consent")


def _enrol_photo(scope: Scope, person: Person, image: bytes) -> None:
    """Check and store a face photo; the verdict (or the reason) is shown on the person page."""
    try:
        template = faces.enrol_face(scope, person.id, image)
        db.session.commit()
    except NotFound:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        reason = error.extensions.get("reason")
        if reason in set(FaceQualityReason):
            session[_FACE_RESULT] = {
                "person_id": person.id,
                "ok": False,
                "reason": reason,
                "words": face_reason_words(reason),
                "measurements": face_measurement_lines(error.extensions.get("measurements")),
            }
        else:
            flash_error(_("Photo not stored: %(reason)s", reason=error_text(error)))
        return
    session[_FACE_RESULT] = {
        "person_id": person.id,
        "ok": True,
        "measurements": face_measurement_lines(template.quality),
    }


@bp.post("/people/<pid>/faces")
@login_required
def person_upload_face(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    image = _upload("photo")
    if image is None:
        flash_error(_("Choose a photo to upload."))
    else:
        _enrol_photo(scope, person, image)
    return _back(person.id, "faces")


@bp.post("/faces/<fid>/delete")
@login_required
def person_delete_face(fid: str) -> Response:
    scope = current_scope()
    face = scope.get(FaceTemplate, fid)
    person_id = face.person_id
    attempt(lambda: faces.delete_face(scope, face.id), _("Face photo deleted."))
    return _back(person_id, "faces")


@bp.post("/people/<pid>/id-check")
@login_required
def person_id_check(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    id_photo, live_photo = _upload("id_photo"), _upload("live_photo")
    if id_photo is None or live_photo is None:
        flash_error(_("Choose both photos: the ID card's chip photo and a live photo."))
        return _back(person.id, "id-check")

    def verdict(result: IdCheck) -> str:
        if result.distance is None:
            photo, _sep, reason = (result.reason or ":").partition(":")
            return _(
                "No match: the %(photo)s cannot be used (%(reason)s).",
                photo=_PHOTO_WORDS.get(photo, photo),
                reason=face_reason_words(reason),
            )
        numbers = {
            "distance": f"{result.distance:.2f}",
            "tolerance": f"{result.tolerance:.2f}",
            "status": word(person.status),
        }
        if result.match:
            return _(
                "Match: distance %(distance)s (tolerance %(tolerance)s). Status: %(status)s.",
                **numbers,
            )
        return _(
            "No match: distance %(distance)s (tolerance %(tolerance)s). Status: %(status)s.",
            **numbers,
        )

    attempt(lambda: faces.id_check(scope, person.id, id_photo, live_photo), verdict)
    return _back(person.id, "id-check")


@bp.post("/people/<pid>/credentials/<kind>")
@login_required
def person_add_credential(pid: str, kind: str) -> Response:
    if kind not in _CREDENTIALS:
        abort(404)
    model, schema, key, normalise = _CREDENTIALS[kind]
    scope = current_scope()
    person = scope.get(Person, pid)
    payload = {key: request.form.get(key, "").strip()}
    if model is Vehicle and request.form.get("color"):
        payload["color"] = request.form["color"]
    try:
        data = schema().load(payload)
    except ma.ValidationError as error:
        flash_form_errors(flatten_messages(error.messages))
        return _back(person.id, "credentials")

    def add() -> Any:
        data[key] = normalise(data[key])  # a plate is checked here: its error is flashed
        return people.add_credential(scope, person.id, model, data)

    attempt(add, lambda _row: _credential_done(kind, data[key], "added"))
    return _back(person.id, "credentials")


def _credential_done(kind: str, value: str, done: str) -> str:
    """What happened to a card, vehicle or tag, in one sentence."""
    texts = {
        ("cards", "added"): _("Card %(value)s added.", value=value),
        ("cards", "disabled"): _("Card %(value)s disabled.", value=value),
        ("cards", "enabled"): _("Card %(value)s enabled.", value=value),
        ("vehicles", "added"): _("Vehicle %(value)s added.", value=value),
        ("vehicles", "disabled"): _("Vehicle %(value)s disabled.", value=value),
        ("vehicles", "enabled"): _("Vehicle %(value)s enabled.", value=value),
        ("tags", "added"): _("Tag %(value)s added.", value=value),
        ("tags", "disabled"): _("Tag %(value)s disabled.", value=value),
        ("tags", "enabled"): _("Tag %(value)s enabled.", value=value),
    }
    return texts[(kind, done)]


@bp.post("/credentials/<kind>/<crid>")
@login_required
def person_switch_credential(kind: str, crid: str) -> Response:
    if kind not in _CREDENTIALS:
        abort(404)
    model, _schema, key, _normalise = _CREDENTIALS[kind]
    scope = current_scope()
    row = scope.get(model, crid)
    disabled = request.form.get("disabled") == "1"
    attempt(
        lambda: people.update_credential(scope, model, row.id, {"disabled": disabled}),
        lambda changed: _credential_done(
            kind, getattr(changed, key), "disabled" if disabled else "enabled"
        ),
    )
    return _back(row.person_id, "credentials")


@bp.post("/people/<pid>/leases")
@login_required
def person_new_lease(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    zone = zone_of(db.session.get(Community, person.community_id))
    errors: dict[str, list[str]] = {}
    starts = read_local(request.form, "starts_at", zone, errors)
    ends = read_local(request.form, "ends_at", zone, errors)
    if not request.form.get("unit_id"):
        add_error(errors, "unit", _("Choose the unit."))
    if errors:
        flash_form_errors(errors)
        return _back(person.id, "leases")
    data = {"unit_id": request.form["unit_id"], "starts_at": starts, "ends_at": ends}
    attempt(lambda: people.create_lease(scope, person.id, data), _("Lease added."))
    return _back(person.id, "leases")


@bp.post("/leases/<lid>/end")
@login_required
def lease_end_now(lid: str) -> Response:
    scope = current_scope()
    lease = scope.get(Lease, lid)
    attempt(lambda: people.update_lease(scope, lease.id, {"end_now": True}), _("Lease ended now."))
    return _back(lease.person_id, "leases")


@bp.post("/leases/<lid>/renew")
@login_required
def lease_renew(lid: str) -> Response:
    scope = current_scope()
    lease = scope.get(Lease, lid)
    community = db.session.get(Community, lease.community_id)
    errors: dict[str, list[str]] = {}
    zone = zone_of(community)
    ends = read_local(request.form, "ends_at", zone, errors)
    if ends is None:
        flash_form_errors(errors)
        return _back(lease.person_id, "leases")
    attempt(
        lambda: people.update_lease(scope, lease.id, {"ends_at": ends}),
        lambda changed: _(
            "Lease now ends %(time)s.", time=local_input(changed.ends_at, zone).replace("T", " ")
        ),
    )
    return _back(lease.person_id, "leases")


@bp.post("/worker-permits/<wid>")
@login_required
def worker_permit_edit(wid: str) -> Response:
    scope = current_scope()
    permit = scope.get(WorkerPermit, wid)
    zone = zone_of(db.session.get(Community, permit.community_id))
    form = request.form
    errors: dict[str, list[str]] = {}
    payload: dict[str, Any] = {
        "tag": form.get("tag", ""),
        "access_point_ids": form.getlist("access_point_ids"),
        "schedule": schedule_window(form, "", errors),
    }
    if not payload["access_point_ids"]:
        add_error(errors, "access_point_ids", _("Choose at least one access point."))
    for field in ("valid_from", "valid_until"):
        value = read_local(form, field, zone, errors)
        if value is not None:
            payload[field] = value.isoformat()
    if not errors:
        try:
            changes = WorkerPermitPatchSchema().load(payload)
        except ma.ValidationError as error:
            errors = flatten_messages(error.messages)
    if errors:
        flash_form_errors(errors)
        return _back(permit.person_id, "permit")
    attempt(lambda: people.update_permit(scope, permit.id, changes), _("Permit saved."))
    return _back(permit.person_id, "permit")


@bp.post("/people/<pid>/guardians")
@login_required
def person_guardians(pid: str) -> Response:
    scope = current_scope()
    person = scope.get(Person, pid)
    current = [g.id for g in person.guardians]
    if request.form.get("add"):
        wanted = [*current, request.form["add"]]
    else:
        wanted = [g for g in current if g != request.form.get("remove")]
    attempt(
        lambda: people.update_person(scope, person.id, {"guardian_ids": wanted}),
        _("Guardians saved."),
    )
    return _back(person.id, "guardians")


# Enrolment -------------------------------------------------------------------------------------

# A face photo that passed its checks while something else on the form did not is kept for the
# next try as its template, never the photo: encrypted with DATA_KEY, then signed with the
# app's SECRET_KEY into a hidden field, for this community and this account, half an hour.
PHOTO_SALT = "enrolment-photo"  # itsdangerous: a salt, not a secret
PHOTO_TOKEN_MAX_AGE = 30 * 60


@dataclass
class _EnrolmentPhoto:
    """A face photo that passed its quality and duplicate checks (this time or last time)."""

    template: Any
    quality: dict[str, Any] | None
    image: bytes | None  # the photo itself, when it came with this submission
    token: str | None = None  # keeps it for the next try; None where it must be chosen again


def _photo_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=PHOTO_SALT)


def _photo_token(community: Community, template: Any, quality: dict[str, Any] | None) -> str:
    """The hidden field that keeps a checked photo's template for the form's next try."""
    sealed = crypto.encrypt(template_to_bytes(template)).decode("ascii")
    return str(
        _photo_serializer().dumps(
            {
                "community_id": community.id,
                "user_id": signed_in_user().id,
                "template": sealed,
                "quality": quality,
            }
        )
    )


def _kept_photo(community: Community, token: str) -> _EnrolmentPhoto | None:
    """The photo an earlier try kept; None for none, or one tampered with, expired, made for
    another community or account, or sealed with another key (the photo is asked again)."""
    if not token:
        return None
    try:
        kept = _photo_serializer().loads(token, max_age=PHOTO_TOKEN_MAX_AGE)
        if kept["community_id"] != community.id or kept["user_id"] != signed_in_user().id:
            return None
        template = template_from_bytes(crypto.decrypt(kept["template"].encode("ascii")))
        quality = kept.get("quality")
    except (BadData, DecryptionError, TemplateError, KeyError, TypeError, AttributeError):
        return None
    return _EnrolmentPhoto(template, quality if isinstance(quality, dict) else None, None)


def _enrolment_photo(
    community: Community, form: MultiDict[str, str], errors: dict[str, list[str]], view: dict
) -> _EnrolmentPhoto | None:
    """The face photo to enrol: the one chosen now (checked here), else the one an earlier try
    kept, else none. Its problems go under ``photo``; a refused photo's measurements and
    whether a good one must be chosen again go in ``view``."""
    keeps_photos = community_settings.effective(community.settings).keep_enrolment_photos
    image = _upload("photo")
    if image is not None:
        try:
            result = faces.checked_photo(image)
        except DomainError as error:
            add_error(errors, "photo", error.detail)
            view["photo_measurements"] = face_measurement_lines(
                error.extensions.get("measurements")
            )
            return None
        photo = _EnrolmentPhoto(result.template, faces.measurements(result.measurements), image)
    elif "photo_discard" in form or keeps_photos:
        return None
    else:
        photo = _kept_photo(community, form.get("photo_token", ""))
        if photo is None:
            return None
    try:
        faces.check_not_duplicate(community.id, photo.template, None)
    except DomainError as error:
        add_error(errors, "photo", error.detail)
        return None
    if keeps_photos:
        view["photo_again"] = True  # the photo itself would be kept: too big for the form
    else:
        photo.token = _photo_token(community, photo.template, photo.quality)
    return photo


def _check_order(
    starts: datetime | None, ends: datetime | None, field: str, errors: dict[str, list[str]]
) -> None:
    if starts is not None and ends is not None and ends <= starts:
        add_error(errors, field, _("The end must come after the start."))


def _enrolment_data(
    scope: Scope, community: Community, form: MultiDict[str, str], errors: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The enrolment form as ``create_person``'s input; else None, with every message in
    ``errors`` at once: the service would refuse one thing at a time, so what it checks
    (the unit, the document number, the order of dates) is checked here first."""
    zone = zone_of(community)
    role = form.get("role", "")
    payload: dict[str, Any] = {"name": form.get("name", "").strip(), "role": role}
    if not payload["name"]:
        add_error(errors, "name", _("Enter the person's name."))
    if role not in set(PersonRole):
        add_error(errors, "role", _("Choose a role."))
    elif role in people.UNIT_ROLES:
        unit_id = form.get("unit_id", "")
        if not unit_id:
            add_error(errors, "unit_id", _("Choose the unit."))
        elif not db.session.scalar(
            scope.query(Unit).where(Unit.id == unit_id, Unit.community_id == community.id)
        ):
            add_error(errors, "unit_id", _("No such unit in this community."))
        else:
            payload["unit_id"] = unit_id
    if form.get("phone", "").strip():
        payload["phone"] = form["phone"].strip()
    id_type, id_number = form.get("id_type", ""), form.get("id_number", "").strip()
    if id_number and not id_type:
        add_error(errors, "id_type", _("Choose the document type."))
    elif id_type and not id_number:
        add_error(errors, "id_number", _("Enter the number, or choose no document."))
    elif id_type:
        payload["id_document"] = {"type": id_type, "number": id_number}
        try:
            validate_document(id_type, id_number)
        except DocumentError as error:
            field = "id_type" if error.reason is DocumentProblem.UNKNOWN_TYPE else "id_number"
            add_error(errors, field, people.document_problem_words(error))
    payload["lives_alone"] = "lives_alone" in form
    payload["wander_risk"] = "wander_risk" in form
    if role == PersonRole.TENANT:
        starts = read_local(form, "lease_starts_at", zone, errors)
        ends = read_local(form, "lease_ends_at", zone, errors)
        _check_order(starts, ends, "lease_ends_at", errors)
        payload["lease"] = {
            key: value.isoformat()
            for key, value in (("starts_at", starts), ("ends_at", ends))
            if value is not None
        }
    if role == PersonRole.WORKER:
        worker: dict[str, Any] = {
            "tag": form.get("worker_tag", ""),
            "access_point_ids": form.getlist("worker_access_point_ids"),
            "schedule": schedule_window(form, "worker_", errors),
        }
        if not worker["access_point_ids"]:
            add_error(errors, "worker_access_point_ids", _("Choose at least one access point."))
        valid_from = read_local(form, "worker_valid_from", zone, errors)
        valid_until = read_local(form, "worker_valid_until", zone, errors)
        _check_order(valid_from, valid_until, "worker_valid_until", errors)
        for key, value in (("valid_from", valid_from), ("valid_until", valid_until)):
            if value is not None:
                worker[key] = value.isoformat()
        payload["worker"] = worker
    try:
        data = PersonSchema().load(payload)
    except ma.ValidationError as error:
        merge_errors(errors, error.messages, _form_field, _FRIENDLY)
        return None
    return None if errors else data


def _form_field(key: str) -> str:
    """The enrolment form's input for a schema or service message key."""
    if key.startswith("worker.schedule"):
        return "worker_schedule"
    return _FORM_FIELD.get(key) or "form"


def _enrol_page(
    community: Community,
    scope: Scope,
    values: MultiDict[str, str],
    errors: dict[str, list[str]],
    photo: _EnrolmentPhoto | None = None,
    view: dict[str, Any] | None = None,
) -> str:
    order = {field: n for n, field in enumerate(FIELD_LABELS)}  # the form's order
    return render_template(
        "person_new.html",
        community=community,
        values=values,
        errors=dict(sorted(errors.items(), key=lambda item: order.get(item[0], len(order)))),
        labels=FIELD_LABELS,
        roles=list(PersonRole),
        buildings=_buildings_with_units(scope, community),
        access_points=access_points_of(scope, community.id),
        worker_tags=list(WorkerTag),
        documents=list(DocumentType),
        weekdays=WEEKDAYS,
        photo=photo if photo is not None and photo.token else None,
        photo_quality=face_measurement_lines(photo.quality) if photo is not None else [],
        photo_again=bool((view or {}).get("photo_again")),
        photo_measurements=(view or {}).get("photo_measurements") or [],
    )


@bp.route("/communities/<cid>/people/new", methods=["GET", "POST"])
@login_required
def person_enrol(cid: str) -> Any:
    """The enrolment form: every problem shown at once, next to its input, and nothing stored
    unless all of it is (the person, the role, the consent, the face)."""
    scope = _staff_scope()
    community = scope.get(Community, cid)
    if request.method == "GET":
        return _enrol_page(community, scope, MultiDict({"role": "resident"}), {})
    form = request.form
    errors: dict[str, list[str]] = {}
    view: dict[str, Any] = {}
    data = _enrolment_data(scope, community, form, errors)
    photo = _enrolment_photo(community, form, errors, view)
    consent = "face_consent" in form
    if (photo is not None or "photo" in errors) and not consent:
        add_error(
            errors,
            "face_consent",
            _(
                "A face photo is enrolled only with the person's consent to face "
                "recognition: tick it, or leave the photo out."
            ),
        )
    person = face = None
    if data is not None and not errors:
        try:
            person = people.create_person(scope, community.id, data)
            if consent:
                people.record_consent(scope, person.id, people.FACE_PURPOSE)
            if photo is not None:
                face = faces.enrol_checked_template(
                    scope, person.id, photo.template, photo.quality, photo.image
                )
            db.session.commit()
        except DomainError as error:
            db.session.rollback()  # nothing half-stored
            person = None
            merge_errors(
                errors,
                error.extensions.get("errors") or {"": [error.detail]},
                _form_field,
                _FRIENDLY,
            )
    if person is None:
        kept = photo if "photo" not in errors else None
        page = _enrol_page(
            community, scope, form, errors or {"form": [_("Check the form.")]}, kept, view
        )
        return page, 422
    flash_ok(_("%(name)s enrolled.", name=person.name))
    if face is not None:
        session[_FACE_RESULT] = {
            "person_id": person.id,
            "ok": True,
            "measurements": face_measurement_lines(face.quality),
        }
    return redirect(url_for("web.person_page", pid=person.id))
