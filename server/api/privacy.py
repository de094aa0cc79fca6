"""A person's rights (PIPL): their data exported, their data erased (docs/privacy.md)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_babel import gettext as _
from marshmallow import fields

from server.api import authenticated_blueprint, scope
from server.community import settings as community_settings
from server.extensions import db
from server.models import Community, Person, UserRole
from server.privacy import erasure, export

blp = authenticated_blueprint("privacy", "Personal information: a person's export and erasure")


class PersonExportSchema(ma.Schema):
    """One person's data as stored (docs/privacy.md says what each part holds)."""

    format = fields.Str()
    exported_at = fields.Str()
    community = fields.Dict(allow_none=True)
    notes = fields.List(fields.Str())
    person = fields.Dict()
    memberships = fields.List(fields.Dict())
    leases = fields.List(fields.Dict())
    worker_permit = fields.Dict(allow_none=True)
    consents = fields.List(fields.Dict())
    faces = fields.Dict()
    cards = fields.List(fields.Dict())
    rfid_tags = fields.List(fields.Dict())
    vehicles = fields.List(fields.Dict())
    id_checks = fields.List(fields.Dict())
    registration_requests = fields.List(fields.Dict())
    accounts = fields.List(fields.Dict())
    access_events = fields.List(fields.Dict())
    notifications = fields.List(fields.Dict())
    passes_issued = fields.List(fields.Dict())
    courier_codes_issued = fields.List(fields.Dict())
    data_reads = fields.List(fields.Dict())
    changes = fields.List(fields.Dict())
    truncated = fields.List(
        fields.Str(), metadata={"description": "lists cut at their newest 10,000 rows"}
    )


class KeptSchema(ma.Schema):
    what = fields.Str()
    why = fields.Str()
    days = fields.Int(allow_none=True)


class ErasureSchema(ma.Schema):
    person_id = fields.Str()
    erased_at = fields.AwareDateTime()
    already_erased = fields.Bool()
    counts = fields.Dict(keys=fields.Str(), values=fields.Int())
    kept = fields.List(fields.Nested(KeptSchema))


def exportable_person(pid: str) -> Person:
    """The person, for staff and admins of their community or the resident who is them."""
    caller = scope()
    if caller.role is UserRole.RESIDENT and caller.user.person_id == pid:
        person = db.session.get(Person, pid)
        if person is not None:
            return person
    return caller.get(Person, pid)  # a resident asking for anyone else: 404


@blp.get("/people/<pid>/export")
@blp.response(200, PersonExportSchema)
def export_person(pid: str) -> Any:
    """Everything stored about the person, as one JSON document (a download): staff and
    admins of their community, or the resident themself. Recorded as a read (``export``)."""
    person = exportable_person(pid)
    document = export.export_person(scope().user, person)
    db.session.commit()
    disposition = f'attachment; filename="person-{person.id}.json"'
    return document, 200, {"Content-Disposition": disposition}


def kept_by_law(person: Person) -> list[dict[str, Any]]:
    """What erasure keeps and why (the 200 answer; docs/privacy.md)."""
    community = db.session.get(Community, person.community_id)
    settings = community_settings.effective(community.settings if community else None)
    return [
        {
            "what": "access_events",
            "why": _(
                "Security records of entries and exits: kept with the person's id and no "
                "name until the community's event retention ends."
            ),
            "days": settings.event_retention_days,
        },
        {
            "what": "held_evidence",
            "why": _(
                "Events and face crops an open alert or an officer's hold names: kept until "
                "the hold ends."
            ),
            "days": settings.evidence_hold_days,
        },
        {
            "what": "audit_log",
            "why": _("Who changed what: kept without the erased values."),
            "days": settings.audit_retention_days,
        },
        {
            "what": "data_reads",
            "why": _("Who read the person's data: kept under the person's id."),
            "days": settings.data_read_retention_days,
        },
    ]


def erasure_answer(result: erasure.Erasure) -> dict[str, Any]:
    person = db.session.get(Person, result.person_id)
    return {
        "person_id": result.person_id,
        "erased_at": result.erased_at,
        "already_erased": result.already,
        "counts": result.counts,
        "kept": kept_by_law(person),
    }


@blp.post("/people/<pid>/erasure")
@blp.response(200, ErasureSchema)
def erase_person(pid: str) -> Any:
    """Erase the person's biometrics, ID number, phone and name (a pseudonym in history);
    credentials and passes revoked, accounts disabled. Staff and admins of their community.
    Asking again changes nothing. The answer says what the law keeps."""
    result = erasure.erase_person(scope(), pid)
    db.session.commit()
    return erasure_answer(result)
