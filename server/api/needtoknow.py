"""Need to know: the identity behind a welfare alert or a watchlist hit (behind a stated
purpose, recorded), and the audit log (changes and reads of personal data) for supervisors.

``POST /alerts/{id}/identity``: officers covering the alert's community and its staff (and
admins); residents and other communities 404. ``GET /communities/{cid}/audit`` and
``/data-reads``: staff supervisors of the community and admins; others 403 (another
community 404). docs/audit.md.
"""

from __future__ import annotations

import base64
from typing import Any

import marshmallow as ma
from flask import Response
from marshmallow import fields, validate

from server.alerts import identity as identities
from server.api import authenticated_blueprint, scope
from server.api.pagination import paginated
from server.core import audit_log
from server.core.audit_log import AuditFilters
from server.extensions import db
from server.models import Community

blp = authenticated_blueprint(
    "needtoknow", "Need to know: identities behind alerts, and the audit log for supervisors"
)


class IdentityRequestSchema(ma.Schema):
    purpose = fields.Str(
        required=True,
        validate=validate.OneOf([p.value for p in identities.Purpose]),
        metadata={"description": "why you open it: welfare_check or investigation"},
    )


class GuardianSchema(ma.Schema):
    name = fields.Str()
    phone = fields.Str(allow_none=True)


class IdentitySchema(ma.Schema):
    alert_id = fields.Str()
    subject = fields.Str(metadata={"description": "person or watchlist_entry"})
    subject_id = fields.Str()
    name = fields.Str(metadata={"description": "the full name"})
    role = fields.Str(allow_none=True)
    phone = fields.Str(allow_none=True)
    units = fields.List(fields.Str(), metadata={"description": "building · unit, current"})
    guardians = fields.List(fields.Nested(GuardianSchema))
    photo = fields.Str(
        allow_none=True,
        metadata={"description": "the enrolment photo as a data: URL; null when none is kept"},
    )
    category = fields.Str(allow_none=True, metadata={"description": "watchlist: wanted, missing"})
    note = fields.Str(allow_none=True)
    purpose = fields.Str()


class AuditQuerySchema(ma.Schema):
    actor = fields.Str(validate=validate.Length(max=80), metadata={"description": "username"})
    person_id = fields.Str(validate=validate.Length(max=40))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()


class AuditEntrySchema(ma.Schema):
    id = fields.Str()
    at = fields.AwareDateTime()
    community_id = fields.Str(allow_none=True)
    actor = fields.Str()
    action = fields.Str()
    target_type = fields.Str(allow_none=True)
    target_id = fields.Str(allow_none=True)
    details = fields.Dict()
    remote_addr = fields.Str(allow_none=True)


class DataReadSchema(ma.Schema):
    id = fields.Str()
    at = fields.AwareDateTime()
    community_id = fields.Str(allow_none=True)
    actor = fields.Str()
    actor_role = fields.Str()
    person_id = fields.Str(metadata={"description": "``*`` for a list: see person_ids"})
    person_ids = fields.List(fields.Str(), allow_none=True)
    what = fields.Str(
        metadata={"description": "person_page, person_api, person_list, welfare_view, ..."}
    )
    purpose = fields.Str(allow_none=True)
    alert_id = fields.Str(allow_none=True)
    remote_addr = fields.Str(allow_none=True)


def identity_answer(identity: identities.Identity, purpose: str) -> dict[str, Any]:
    photo = (
        f"data:{identity.photo_type};base64,{base64.b64encode(identity.photo).decode()}"
        if identity.photo
        else None
    )
    return {
        **{
            name: getattr(identity, name)
            for name in (
                "alert_id",
                "subject",
                "subject_id",
                "name",
                "role",
                "phone",
                "category",
                "note",
            )
        },
        "units": list(identity.units),
        "guardians": [{"name": g.name, "phone": g.phone} for g in identity.guardians],
        "photo": photo,
        "purpose": purpose,
    }


@blp.post("/alerts/<alert_id>/identity")
@blp.arguments(IdentityRequestSchema)
@blp.response(200, IdentitySchema)
def reveal_identity(data: dict[str, Any], alert_id: str) -> Any:
    """The person behind a welfare alert (elder or child wandering, elder not seen) or a
    watchlist hit, in full: enrolment photo (when kept), units, guardians and their phones.
    State why (``welfare_check``, ``investigation``): the read is recorded with it. 409 for
    an alert of another type, 404 when its person is no longer stored."""
    purpose = identities.Purpose(data["purpose"])
    found = identities.reveal(scope(), alert_id, purpose)
    db.session.commit()
    return Response(
        IdentitySchema().dumps(identity_answer(found, purpose.value)),
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _filters(cid: str, query: dict[str, Any]) -> AuditFilters:
    caller = scope()
    community = caller.get(Community, cid)
    audit_log.require_supervisor(caller)
    return AuditFilters(
        community_ids=frozenset({community.id}),
        actor=query.get("actor"),
        person_id=query.get("person_id"),
        since=query.get("since"),
        until=query.get("until"),
    )


@blp.get("/communities/<cid>/audit")
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditEntrySchema(many=True))
@blp.paginate()
def list_audit(query: dict[str, Any], cid: str, pagination_parameters: Any) -> Any:
    """The community's audit log (changes), newest first; supervisors and admins. Filters:
    ``actor`` (username), ``person_id``, ``since``, ``until``."""
    filters = _filters(cid, query)
    return paginated(audit_log.changes_query(filters), pagination_parameters)


@blp.get("/communities/<cid>/data-reads")
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, DataReadSchema(many=True))
@blp.paginate()
def list_data_reads(query: dict[str, Any], cid: str, pagination_parameters: Any) -> Any:
    """Reads of personal data in the community (who read whose data, what, why, when),
    newest first; supervisors and admins. A ``person_id`` filter also finds the lists
    that showed the person."""
    filters = _filters(cid, query)
    return paginated(audit_log.reads_query(filters), pagination_parameters)
