"""Erasure on request (PIPL art. 47): a person's biometrics, ID number, phone and name go.

What it does, once (``Person.erased_at``; asking again answers the same and changes nothing):
the move-out first (``server.people.service.move_out``: templates and enrolment photos
erased, credentials disabled, passes they issued revoked, leases ended, consents withdrawn,
accounts disabled), then:

- the face crops of their access events and any template on those events are erased, their
  ID checks deleted, their cards, tags and cars deleted (their events lose the plate);
- the person row keeps its id but its name becomes a pseudonym (``已删除-`` and the id's
  last six characters), its phone, ID number (encrypted and masked) and code serial go;
- where history named them it names the pseudonym: their accounts (username, display name,
  the audit log's actor), registration requests, the audit log's details of changes to them
  and their credentials, notifications to guardians, alert summaries.

What stays, as the law asks (docs/privacy.md): the access events themselves (the fact of an
entry, with the person's id and no name, until ``event_retention_days``), the audit log and
the records of reads (``data_reads``), and held evidence (events an open alert or an
officer's hold names, with their crops, until the hold ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, delete, or_, select, update
from sqlalchemy import event as sa_event

from gatekeeper.identity import mask_name
from gatekeeper.vocabulary import CredentialType
from server.access import snapshots
from server.alerts.evidence import held_event_ids
from server.core import audit
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    AuditEntry,
    Card,
    IdCheck,
    Notification,
    Person,
    RegistrationRequest,
    RfidTag,
    User,
    Vehicle,
    VehiclePresence,
    utcnow,
)
from server.models.privacy import DataRead
from server.people import service as people

PSEUDONYM_PREFIX = "已删除-"
# Keys of audit details and notification parameters that may hold what erasure removes.
_PERSONAL_KEYS = frozenset({"name", "phone", "uid", "epc", "plate", "id_document"})


def pseudonym(person_id: str) -> str:
    """What an erased person is called from then on: ``已删除-`` and six characters of the id."""
    return PSEUDONYM_PREFIX + person_id[-6:]


@dataclass
class Erasure:
    """What one erasure did (counts), or that it had been done before."""

    person_id: str
    erased_at: datetime
    already: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def erase_person(scope: Scope, person_id: str) -> Erasure:
    """Erase ``person_id``'s personal data (staff and admins of their community)."""
    person = scope.writable(Person, person_id)
    if person.erased_at is not None:
        return Erasure(person.id, person.erased_at, already=True)
    now = utcnow()
    counts: dict[str, int] = {}
    people.move_out(scope, person.id)
    counts["templates"] = people.erase_biometrics(person)  # any enrolled since a move-out
    counts.update(_erase_event_biometrics(person.id, now))
    counts["id_checks"] = _delete(IdCheck, IdCheck.person_id == person.id)
    credential_ids = _delete_credentials(person.id)
    counts["credentials"] = len(credential_ids)
    old_name = person.name
    new_name = pseudonym(person.id)
    counts["accounts"] = _pseudonymise_accounts(person.id, person.community_id)
    counts["registration_requests"] = _pseudonymise_requests(person.id, new_name)
    counts["audit_entries"] = _scrub_audit(person.id, credential_ids)
    counts["notifications"] = _scrub_notifications(person.community_id, old_name, new_name)
    counts["alerts"] = _scrub_alerts(person.community_id, person.id, old_name, new_name)
    person.name = new_name
    person.phone = None
    person.id_document_type = None
    person.id_document_encrypted = None
    person.id_document_masked = None
    person.code_serial = None
    person.erased_at = now
    audit.record(
        scope.user,
        "person.erasure",
        community_id=person.community_id,
        target=person,
        details={"counts": counts},
    )
    return Erasure(person.id, now, counts=counts)


def _delete(model: Any, where: Any) -> int:
    result = db.session.execute(
        delete(model).where(where), execution_options={"synchronize_session": False}
    )
    return result.rowcount or 0


def _erase_event_biometrics(person_id: str, now: datetime) -> dict[str, int]:
    """Crops and templates of the person's events go, and the plates their cars showed;
    held evidence keeps its crop (the law's exception, said in the answer)."""
    held = held_event_ids(now)
    crops = kept = plates = 0
    paths: list[str] = []
    for event in db.session.scalars(
        select(AccessEvent).where(
            AccessEvent.person_id == person_id,
            or_(
                AccessEvent.snapshot_path.is_not(None),
                AccessEvent.template_encrypted.is_not(None),
                AccessEvent.plate.is_not(None),
            ),
        )
    ):
        if event.id in held:
            kept += 1
            continue
        if event.snapshot_path:
            paths.append(event.snapshot_path)
            event.snapshot_path = None
            crops += 1
        event.template_encrypted = None
        if event.plate is not None:
            event.details = {k: v for k, v in (event.details or {}).items() if k != "plate"}
            event.plate = None
            plates += 1
    _discard_after_commit(paths)
    return {"event_crops": crops, "event_plates": plates, "held_events_kept": kept}


def _discard_after_commit(paths: list[str]) -> None:
    """Erase the crops' files once the rows no longer name them (a failed erasure keeps
    both)."""
    if not paths:
        return

    def discard(_session: Any) -> None:
        for path in paths:
            snapshots.discard(path)

    sa_event.listen(db.session(), "after_commit", discard, once=True)


def _delete_credentials(person_id: str) -> list[str]:
    """Delete the person's cards, tags and cars (already disabled by the move-out)."""
    ids: list[str] = []
    vehicles = select(Vehicle.id).where(Vehicle.person_id == person_id)
    db.session.execute(
        update(VehiclePresence)
        .where(VehiclePresence.vehicle_id.in_(vehicles))
        .values(vehicle_id=None),
        execution_options={"synchronize_session": False},
    )
    for model in (Card, RfidTag, Vehicle):
        ids += db.session.scalars(select(model.id).where(model.person_id == person_id))
        _delete(model, model.person_id == person_id)
    return ids


def _pseudonymise_accounts(person_id: str, community_id: str) -> int:
    """Accounts acting as the person: a username that says nothing, no display name; the
    audit log, the records of reads and the intercom calls they answered name it too."""
    users = list(db.session.scalars(select(User).where(User.person_id == person_id)))
    renamed: dict[str, str] = {}
    quick = {"synchronize_session": False}
    for user in users:
        renamed[user.username] = f"erased-{user.id[-10:]}".lower()
        user.username = renamed[user.username]
        user.display_name = None
        for model in (AuditEntry, DataRead):
            db.session.execute(
                update(model).where(model.actor_user_id == user.id).values(actor=user.username),
                execution_options=quick,
            )
    if renamed:
        answered = db.session.execute(
            select(AccessEvent.id, AccessEvent.details).where(
                AccessEvent.community_id == community_id,
                AccessEvent.credential_type == CredentialType.INTERCOM,
            )
        ).all()
        for event_id, details in answered:
            if (details or {}).get("answered_by") in renamed:
                db.session.execute(
                    update(AccessEvent)
                    .where(AccessEvent.id == event_id)
                    .values(details={**details, "answered_by": renamed[details["answered_by"]]}),
                    execution_options=quick,
                )
    return len(users)


def _pseudonymise_requests(person_id: str, new_name: str) -> int:
    requests = list(
        db.session.scalars(
            select(RegistrationRequest).where(RegistrationRequest.person_id == person_id)
        )
    )
    for row in requests:
        row.name = new_name
        row.phone = ""
        row.template_encrypted = None
        row.template_quality = None
        row.id_document_type = None
        row.id_document_encrypted = None
        row.id_document_masked = None
    return len(requests)


def _scrub(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: ("*" if k in _PERSONAL_KEYS else v) for k, v in (values or {}).items()}


def _scrub_audit(person_id: str, credential_ids: list[str]) -> int:
    """Changes to the person and their credentials keep their record without the values."""
    entries = list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.target_id.in_([person_id, *credential_ids]))
        )
    )
    changed = 0
    for entry in entries:
        scrubbed = _scrub(entry.details)
        if scrubbed != (entry.details or {}):
            entry.details = scrubbed
            changed += 1
    return changed


def _scrub_notifications(community_id: str, old_name: str, new_name: str) -> int:
    """Notifications that named the person (a guardian told their ward left) name the
    pseudonym."""
    changed = 0
    # Read through: a JSON column's text may hold the name escaped (\\uXXXX).
    notes = db.session.execute(
        select(Notification.id, Notification.params).where(
            Notification.community_id == community_id
        )
    ).all()
    for note_id, params in notes:
        if (params or {}).get("name") == old_name:
            db.session.execute(
                update(Notification)
                .where(Notification.id == note_id)
                .values(params={**params, "name": new_name}),
                execution_options={"synchronize_session": False},
            )
            changed += 1
    return changed


def _scrub_alerts(community_id: str, person_id: str, old_name: str, new_name: str) -> int:
    """Alert summaries about the person show the pseudonym instead of their masked name."""
    masked = mask_name(old_name)
    changed = 0
    for alert in db.session.scalars(
        select(Alert).where(
            Alert.community_id == community_id,
            cast(Alert.evidence, String).contains(person_id),
            Alert.summary.contains(masked),
        )
    ):
        alert.summary = alert.summary.replace(masked, new_name)
        changed += 1
    return changed
