"""People, their leases, worker permits, consent and credentials (property staff)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from server.api import authenticated_blueprint, scope
from server.api.pagination import paginated
from server.api.schemas import (
    CardSchema,
    ConsentRequestSchema,
    ConsentSchema,
    CredentialPatchSchema,
    LeaseInputSchema,
    LeasePatchSchema,
    LeaseSchema,
    PersonPatchSchema,
    PersonQuerySchema,
    PersonSchema,
    RfidTagPatchSchema,
    RfidTagSchema,
    VehicleSchema,
    WorkerPermitPatchSchema,
    WorkerPermitSchema,
)
from server.core import audit
from server.core.plates import checked_plate
from server.extensions import db
from server.models import (
    Card,
    Community,
    Lease,
    Membership,
    Person,
    RfidTag,
    Vehicle,
    WorkerPermit,
)
from server.people import service as people

blp = authenticated_blueprint("people", "Residents, tenants, workers, elders, children")


def person_answer(person: Person) -> dict[str, Any]:
    memberships = db.session.scalars(select(Membership).where(Membership.person_id == person.id))
    return {
        **{
            c: getattr(person, c)
            for c in (
                "id",
                "community_id",
                "name",
                "phone",
                "id_document_type",
                "id_document_masked",
                "status",
                "valid_from",
                "valid_until",
                "lives_alone",
                "wander_risk",
                "moved_out_at",
                "created_at",
            )
        },
        "guardian_ids": [g.id for g in person.guardians],
        "memberships": [{"role": m.role, "unit_id": m.unit_id} for m in memberships],
    }


@blp.get("/communities/<cid>/people")
@blp.arguments(PersonQuerySchema, location="query")
@blp.response(200, PersonSchema(many=True))
@blp.paginate()
def list_people(filters: dict[str, Any], cid: str, pagination_parameters: Any) -> Any:
    """People of a community; search by name or phone, filter by role, status or unit."""
    community = scope().get(Community, cid)
    query = people.search_people(
        scope(),
        community.id,
        q=filters.get("q"),
        role=filters.get("role"),
        status=filters.get("status"),
        unit_id=filters.get("unit_id"),
    )
    rows = paginated(query, pagination_parameters)
    answer = [person_answer(p) for p in rows]
    if rows:  # one record for the page, naming whom it showed (docs/audit.md)
        audit.record_read(
            scope().user,
            audit.LISTED,
            "person_list",
            community_id=community.id,
            person_ids=[p.id for p in rows],
        )
        db.session.commit()
    return answer


@blp.post("/communities/<cid>/people")
@blp.arguments(PersonSchema)
@blp.response(201, PersonSchema)
def create_person(data: dict[str, Any], cid: str) -> Any:
    """Enrol a person: tenants with ``lease``, workers with ``worker``; documents encrypted."""
    person = people.create_person(scope(), cid, data)
    db.session.commit()
    return person_answer(person)


@blp.get("/people/<pid>")
@blp.response(200, PersonSchema)
def get_person(pid: str) -> Any:
    person = scope().get(Person, pid)
    answer = person_answer(person)
    audit.record_read(scope().user, person, "person_api", community_id=person.community_id)
    db.session.commit()
    return answer


@blp.patch("/people/<pid>")
@blp.arguments(PersonPatchSchema)
@blp.response(200, PersonSchema)
def update_person(changes: dict[str, Any], pid: str) -> Any:
    """Change details, suspend (``status: suspended``) or reactivate."""
    person = people.update_person(scope(), pid, changes)
    db.session.commit()
    return person_answer(person)


@blp.delete("/people/<pid>")
@blp.response(200, PersonSchema)
def move_out(pid: str) -> Any:
    """Move-out: biometrics erased, credentials disabled, leases ended; history kept."""
    person = people.move_out(scope(), pid)
    db.session.commit()
    return person_answer(person)


# Leases and worker permits -------------------------------------------------------------------


@blp.get("/people/<pid>/leases")
@blp.response(200, LeaseSchema(many=True))
def list_leases(pid: str) -> Any:
    person = scope().get(Person, pid)
    return db.session.scalars(
        select(Lease).where(Lease.person_id == person.id).order_by(Lease.starts_at)
    )


@blp.post("/people/<pid>/leases")
@blp.arguments(LeaseInputSchema)
@blp.response(201, LeaseSchema)
def create_lease(data: dict[str, Any], pid: str) -> Any:
    """A further lease for a tenant (``unit_id`` required)."""
    if "unit_id" not in data:
        from server.core.errors import Invalid

        raise Invalid(_l("unit_id is required."), errors={"unit_id": [_l("Required.")]})
    lease = people.create_lease(scope(), pid, data)
    db.session.commit()
    return lease


@blp.patch("/leases/<lid>")
@blp.arguments(LeasePatchSchema)
@blp.response(200, LeaseSchema)
def update_lease(changes: dict[str, Any], lid: str) -> Any:
    """Renew (``ends_at`` later) or end early (``end_now: true``)."""
    lease = people.update_lease(scope(), lid, changes)
    db.session.commit()
    return lease


@blp.get("/people/<pid>/worker-permit")
@blp.response(200, WorkerPermitSchema)
def get_permit(pid: str) -> Any:
    person = scope().get(Person, pid)
    return scope().get(
        WorkerPermit,
        db.session.scalar(select(WorkerPermit.id).where(WorkerPermit.person_id == person.id)),
    )


@blp.patch("/worker-permits/<wid>")
@blp.arguments(WorkerPermitPatchSchema)
@blp.response(200, WorkerPermitSchema)
def update_permit(changes: dict[str, Any], wid: str) -> Any:
    permit = people.update_permit(scope(), wid, changes)
    db.session.commit()
    return permit


# Consent ---------------------------------------------------------------------------------------


@blp.post("/people/<pid>/consents")
@blp.arguments(ConsentRequestSchema)
@blp.response(201, ConsentSchema)
def record_consent(data: dict[str, Any], pid: str) -> Any:
    """Record the person's consent (recorded by you, now) before any face is stored."""
    consent = people.record_consent(scope(), pid, data["purpose"])
    db.session.commit()
    return consent


@blp.delete("/people/<pid>/consents/<purpose>")
@blp.response(204)
def withdraw_consent(pid: str, purpose: str) -> None:
    """Withdraw consent; withdrawing face recognition erases the face templates."""
    people.withdraw_consent(scope(), pid, purpose)
    db.session.commit()


# Credentials -----------------------------------------------------------------------------------


def _credential_routes(
    kind: str, model: type, schema: type, normalise: Any, patch: type = CredentialPatchSchema
) -> None:
    key = {Card: "uid", Vehicle: "plate", RfidTag: "epc"}[model]

    @blp.post(f"/people/<pid>/{kind}", endpoint=f"add_{kind}")
    @blp.arguments(schema)
    @blp.response(201, schema)
    def add(data: dict[str, Any], pid: str) -> Any:
        data[key] = normalise(data[key])
        row = people.add_credential(scope(), pid, model, data)
        db.session.commit()
        return row

    @blp.get(f"/people/<pid>/{kind}", endpoint=f"list_{kind}")
    @blp.response(200, schema(many=True))
    def list_(pid: str) -> Any:
        person = scope().get(Person, pid)
        return db.session.scalars(select(model).where(model.person_id == person.id))

    @blp.patch(f"/{kind}/<credential_id>", endpoint=f"update_{kind}")
    @blp.arguments(patch)
    @blp.response(200, schema)
    def update_(changes: dict[str, Any], credential_id: str) -> Any:
        row = people.update_credential(scope(), model, credential_id, changes)
        db.session.commit()
        return row

    add.__doc__ = f"Register {kind[:-1]} for a person."
    list_.__doc__ = f"A person's {kind}."
    update_.__doc__ = f"Disable/enable a {kind[:-1]} or change its validity."


_credential_routes("cards", Card, CardSchema, str.upper)
_credential_routes("vehicles", Vehicle, VehicleSchema, checked_plate)
_credential_routes("tags", RfidTag, RfidTagSchema, str.upper, RfidTagPatchSchema)
