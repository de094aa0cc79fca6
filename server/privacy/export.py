"""A person's data on request (PIPL art. 45): one JSON document of what is stored about them.

What it holds: the person as stored, their roles and units, leases, worker permit, consents,
credentials without secrets, ID checks, accounts, access history, notifications, the passes
and courier codes they issued, and who read their data (``data_reads``) and changed it (the
audit log). What it never holds: face templates or photos (a count and dates instead),
password or pass-key hashes, the ID number in full (stored encrypted: the masked form, as
everywhere else), card and tag numbers in full (a copy would clone the credential), and other
people's data (a guest's name is masked, other residents of the unit are not named).

Long histories are bounded: each list holds at most ``MAX_ROWS`` rows, newest first, and
``truncated`` names the lists that had more (docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, or_, select

from gatekeeper.identity import mask_name
from server.core import audit, audit_log
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    AuditEntry,
    Building,
    Card,
    Community,
    Consent,
    CourierCode,
    FaceTemplate,
    IdCheck,
    Lease,
    Membership,
    Notification,
    Person,
    RegistrationRequest,
    RfidTag,
    Unit,
    User,
    Vehicle,
    VisitorPass,
    WorkerPermit,
    utcnow,
)

FORMAT = "gatekeeper.person-export/1"
# The most rows of one list in one export (newest first).
MAX_ROWS = 10_000


def mask_number(value: str | None) -> str | None:
    """A card UID or tag EPC as an export shows it: its last four characters."""
    if not value:
        return value
    return "*" * max(len(value) - 4, 0) + value[-4:]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _rows(query: Select[Any], name: str, truncated: list[str]) -> list[Any]:
    """At most ``MAX_ROWS`` rows of ``query``; ``name`` joins ``truncated`` when more exist."""
    rows = list(db.session.execute(query.limit(MAX_ROWS + 1)))
    if len(rows) > MAX_ROWS:
        truncated.append(name)
    return rows[:MAX_ROWS]


def _scalars(query: Select[Any], name: str, truncated: list[str]) -> list[Any]:
    return [row[0] for row in _rows(query, name, truncated)]


def _credentials(rows: Iterable[Any], number: str | None, masked: bool) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = {
            "id": row.id,
            "valid_from": _iso(row.valid_from),
            "valid_until": _iso(row.valid_until),
            "disabled_at": _iso(row.disabled_at),
            "created_at": _iso(row.created_at),
        }
        if number:
            value = getattr(row, number)
            item[number] = mask_number(value) if masked else value
        out.append(item)
    return out


def build(person: Person) -> dict[str, Any]:
    """The export of ``person``: a JSON-ready document with only their data."""
    pid = person.id
    truncated: list[str] = []
    community = db.session.get(Community, person.community_id)
    account_ids = list(db.session.scalars(select(User.id).where(User.person_id == pid)))
    units = {
        unit.id: f"{building.name} {unit.number}"
        for unit, building in db.session.execute(
            select(Unit, Building)
            .join(Building, Building.id == Unit.building_id)
            .where(Unit.community_id == person.community_id)
        )
    }
    points = dict(
        db.session.execute(
            select(AccessPoint.id, AccessPoint.name).where(
                AccessPoint.community_id == person.community_id
            )
        ).all()
    )
    templates = list(db.session.scalars(select(FaceTemplate).where(FaceTemplate.person_id == pid)))
    permit = db.session.scalar(select(WorkerPermit).where(WorkerPermit.person_id == pid))
    events = _scalars(
        select(AccessEvent)
        .where(AccessEvent.community_id == person.community_id, AccessEvent.person_id == pid)
        .order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc()),
        "access_events",
        truncated,
    )
    issued_passes = _scalars(
        select(VisitorPass)
        .where(
            or_(
                VisitorPass.issued_by_person_id == pid,
                VisitorPass.issued_by_user_id.in_(account_ids),
            )
        )
        .order_by(VisitorPass.created_at.desc()),
        "passes_issued",
        truncated,
    )
    courier_codes = _scalars(
        select(CourierCode)
        .where(
            or_(
                CourierCode.issued_by_person_id == pid,
                CourierCode.issued_by_user_id.in_(account_ids),
            )
        )
        .order_by(CourierCode.created_at.desc()),
        "courier_codes_issued",
        truncated,
    )
    notifications = _scalars(
        select(Notification)
        .where(Notification.user_id.in_(account_ids))
        .order_by(Notification.created_at.desc()),
        "notifications",
        truncated,
    )
    reads = _scalars(
        audit_log.reads_query(audit_log.AuditFilters(community_ids=None, person_id=pid)),
        "data_reads",
        truncated,
    )
    changes = _scalars(
        select(AuditEntry).where(AuditEntry.target_id == pid).order_by(AuditEntry.at.desc()),
        "changes",
        truncated,
    )
    return {
        "format": FORMAT,
        "exported_at": utcnow().isoformat(),
        "community": {"id": community.id, "name": community.name} if community else None,
        "notes": [
            _("The ID number is stored encrypted; this export shows it masked."),
            _(
                "Face templates and photos are not exported: they are stored encrypted and "
                "only their number, dates and consent are shown."
            ),
            _("Card and tag numbers show only their last four characters."),
        ],
        "person": {
            "id": pid,
            "name": person.name,
            "phone": person.phone,
            "id_document_type": person.id_document_type,
            "id_document_masked": person.id_document_masked,
            "id_document_stored_encrypted": person.id_document_encrypted is not None,
            "status": person.status.value,
            "valid_from": _iso(person.valid_from),
            "valid_until": _iso(person.valid_until),
            "lives_alone": person.lives_alone,
            "wander_risk": person.wander_risk,
            "moved_out_at": _iso(person.moved_out_at),
            "created_at": _iso(person.created_at),
            "updated_at": _iso(person.updated_at),
            "guardian_ids": [g.id for g in person.guardians],
        },
        "memberships": [
            {
                "id": m.id,
                "role": m.role.value,
                "unit_id": m.unit_id,
                "unit": units.get(m.unit_id) if m.unit_id else None,
                "valid_from": _iso(m.valid_from),
                "valid_until": _iso(m.valid_until),
            }
            for m in db.session.scalars(select(Membership).where(Membership.person_id == pid))
        ],
        "leases": [
            {
                "id": lease.id,
                "unit_id": lease.unit_id,
                "unit": units.get(lease.unit_id),
                "starts_at": _iso(lease.starts_at),
                "ends_at": _iso(lease.ends_at),
                "ended_early_at": _iso(lease.ended_early_at),
            }
            for lease in db.session.scalars(select(Lease).where(Lease.person_id == pid))
        ],
        "worker_permit": None
        if permit is None
        else {
            "tag": permit.tag.value,
            "valid_from": _iso(permit.valid_from),
            "valid_until": _iso(permit.valid_until),
            "schedule": permit.schedule,
            "access_points": [points.get(p.id, p.id) for p in permit.access_points],
        },
        "consents": [
            {
                "id": c.id,
                "purpose": c.purpose,
                "granted_at": _iso(c.granted_at),
                "withdrawn_at": _iso(c.withdrawn_at),
            }
            for c in db.session.scalars(select(Consent).where(Consent.person_id == pid))
        ],
        "faces": {
            "count": len(templates),
            "templates": [
                {
                    "id": t.id,
                    "created_at": _iso(t.created_at),
                    "disabled_at": _iso(t.disabled_at),
                    "consent_id": t.consent_id,
                    "photo_kept": t.photo_encrypted is not None,
                }
                for t in templates
            ],
        },
        "cards": _credentials(
            db.session.scalars(select(Card).where(Card.person_id == pid)), "uid", masked=True
        ),
        "rfid_tags": _credentials(
            db.session.scalars(select(RfidTag).where(RfidTag.person_id == pid)), "epc", masked=True
        ),
        "vehicles": [
            item | {"plate": v.plate, "color": v.color}
            for v, item in (
                (v, _credentials([v], None, masked=False)[0])
                for v in db.session.scalars(select(Vehicle).where(Vehicle.person_id == pid))
            )
        ],
        "id_checks": [
            {"id": c.id, "match": c.match, "reason": c.reason, "checked_at": _iso(c.checked_at)}
            for c in db.session.scalars(select(IdCheck).where(IdCheck.person_id == pid))
        ],
        "registration_requests": [
            {
                "id": r.id,
                "status": r.status.value,
                "created_at": _iso(r.created_at),
                "reviewed_at": _iso(r.reviewed_at),
            }
            for r in db.session.scalars(
                select(RegistrationRequest).where(RegistrationRequest.person_id == pid)
            )
        ],
        "accounts": [
            {
                "id": u.id,
                "username": u.username,
                "role": u.role.value,
                "created_at": _iso(u.created_at),
                "last_login_at": _iso(u.last_login_at),
                "disabled_at": _iso(u.disabled_at),
            }
            for u in db.session.scalars(select(User).where(User.person_id == pid))
        ],
        "access_events": [
            {
                "id": e.id,
                "occurred_at": _iso(e.occurred_at),
                "access_point_id": e.access_point_id,
                "access_point": points.get(e.access_point_id),
                "credential_type": e.credential_type.value,
                "direction": e.direction,
                "decision": e.decision.value,
                "reason": e.reason,
                "plate": e.plate,
                "snapshot_kept": e.snapshot_path is not None,
            }
            for e in events
        ],
        "notifications": [
            {
                "id": n.id,
                "kind": n.kind,
                "params": n.params,
                "created_at": _iso(n.created_at),
                "read_at": _iso(n.read_at),
            }
            for n in notifications
        ],
        "passes_issued": [
            {
                "id": p.id,
                "unit_id": p.unit_id,
                # The guest's name is the guest's data: masked.
                "guest": mask_name(p.guest_name),
                "valid_from": _iso(p.valid_from),
                "valid_until": _iso(p.valid_until),
                "max_uses": p.max_uses,
                "uses": p.uses,
                "revoked_at": _iso(p.revoked_at),
            }
            for p in issued_passes
        ],
        "courier_codes_issued": [
            {
                "id": c.id,
                "label": c.label,
                "valid_from": _iso(c.valid_from),
                "valid_until": _iso(c.valid_until),
                "uses": c.uses,
                "revoked_at": _iso(c.revoked_at),
            }
            for c in courier_codes
        ],
        "data_reads": [
            {
                "at": _iso(r.at),
                "actor": r.actor,
                "actor_role": r.actor_role,
                "what": r.what,
                "purpose": r.purpose,
                "alert_id": r.alert_id,
            }
            for r in reads
        ],
        "changes": [
            {"at": _iso(a.at), "actor": a.actor, "action": a.action, "details": a.details}
            for a in changes
        ],
        "truncated": truncated,
    }


def export_person(actor: User, person: Person) -> dict[str, Any]:
    """The export of ``person`` for ``actor``, recorded as a read (``export``) and audited."""
    document = build(person)
    audit.record_read(actor, person, "export", community_id=person.community_id)
    audit.record(
        actor,
        "person.export",
        community_id=person.community_id,
        target=person,
        details={"read": "personal_data"},
    )
    return document
