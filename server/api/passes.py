"""Visitor passes, their QR images and history; residents' own code.

Residents issue passes for their own unit (staff for any unit they run); a pass of another
unit does not exist for a resident (404). ``unit_id`` is the only ownership a caller may
name, and a resident may only name their own; ``issued_by`` and ``community_id`` are set
by the server (unknown fields answer 422).
"""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_babel import lazy_gettext as _l

from server.access import qr as pass_verification
from server.api import authenticated_blueprint, scope
from server.api.events import event_answers
from server.api.pagination import paginated
from server.api.schemas import (
    AccessEventSchema,
    PassInputSchema,
    PassQuerySchema,
    PassSchema,
    ResidentCodeSchema,
)
from server.core import ratelimits
from server.core.auth import current_principal
from server.core.errors import Conflict
from server.extensions import db
from server.models import Person, VisitorPass, utcnow
from server.passes import images as qrimages
from server.passes import service as passes
from server.passes.service import PassStatus

blp = authenticated_blueprint("passes", "Visitor passes and residents' codes")

_NO_STORE = {"Cache-Control": "no-store"}


def pass_answer(visitor_pass: VisitorPass) -> dict[str, Any]:
    """The pass as its owner sees it, with its token and links."""
    return {
        **{
            name: getattr(visitor_pass, name)
            for name in (
                "id",
                "community_id",
                "unit_id",
                "guest_name",
                "plate",
                "valid_from",
                "valid_until",
                "max_uses",
                "uses",
                "revoked_at",
                "created_at",
                "issued_by_user_id",
            )
        },
        "status": passes.status_of(visitor_pass).value,
        "access_points": [
            {"id": p.id, "name": p.name}
            for p in sorted(visitor_pass.access_points, key=lambda p: p.name)
        ],
        "token": passes.token_for(visitor_pass),
        "qr_png_url": url_for("passes.pass_qr_png", pass_id=visitor_pass.id),
        "qr_svg_url": url_for("passes.pass_qr_svg", pass_id=visitor_pass.id),
        "share_url": url_for(
            "web.shared_pass", secret=passes.share_secret(visitor_pass), _external=True
        ),
    }


@blp.post("/passes")
@ratelimits.issuing_passes
@blp.arguments(PassInputSchema)
@blp.response(201, PassSchema)
def create_pass(data: dict[str, Any]) -> Any:
    """Issue a pass (rate-limited per account). Residents: for their own unit, at most the
    community's ``pass_max_days``, never past a tenant's lease; default doors: the unit's
    building door(s) and the perimeter gates. Staff and admins must name the ``unit_id``
    (422 without it); a resident's is their own."""
    row = passes.create(scope(), data)
    db.session.commit()
    return pass_answer(row)


@blp.get("/passes")
@blp.arguments(PassQuerySchema, location="query")
@blp.response(200, PassSchema(many=True))
@blp.paginate()
def list_passes(query: dict[str, Any], pagination_parameters: Any) -> Any:
    """Passes you may see (residents: your unit's), newest first; filter by ``status``."""
    statement = scope().query(VisitorPass)
    if "status" in query:
        statement = statement.where(passes.status_condition(PassStatus(query["status"]), utcnow()))
    if "unit_id" in query:
        statement = statement.where(VisitorPass.unit_id == query["unit_id"])
    statement = statement.order_by(VisitorPass.created_at.desc(), VisitorPass.id.desc())
    return [pass_answer(row) for row in paginated(statement, pagination_parameters)]


@blp.get("/passes/<pass_id>")
@blp.response(200, PassSchema)
def get_pass(pass_id: str) -> Any:
    return pass_answer(scope().get(VisitorPass, pass_id))


@blp.delete("/passes/<pass_id>")
@blp.response(200, PassSchema)
def revoke_pass(pass_id: str) -> Any:
    """Revoke a pass: its code stops opening doors at once. The pass and its history stay."""
    row = passes.revoke(scope(), pass_id)
    db.session.commit()
    return pass_answer(row)


@blp.get("/passes/<pass_id>/uses")
@blp.response(200, AccessEventSchema(many=True))
def pass_uses(pass_id: str) -> Any:
    """Where and when the pass was presented, granted or denied, newest first."""
    row = scope().get(VisitorPass, pass_id)
    return event_answers(list(passes.uses_of(row)))


@blp.get("/passes/<pass_id>/qr.png")
@blp.response(200, content_type="image/png")
def pass_qr_png(pass_id: str) -> Response:
    """The pass's QR code as a PNG."""
    token = passes.token_for(scope().get(VisitorPass, pass_id))
    db.session.commit()  # a first signing key may have been made
    return Response(qrimages.png(token), mimetype="image/png", headers=_NO_STORE)


@blp.get("/passes/<pass_id>/qr.svg")
@blp.response(200, content_type="image/svg+xml")
def pass_qr_svg(pass_id: str) -> Response:
    """The pass's QR code as SVG."""
    token = passes.token_for(scope().get(VisitorPass, pass_id))
    db.session.commit()
    return Response(qrimages.svg(token), mimetype="image/svg+xml", headers=_NO_STORE)


def _own_person() -> Person:
    user = current_principal()
    person = db.session.get(Person, user.person_id) if user.person_id else None
    if person is None:
        raise Conflict(_l("Only an account linked to a resident has a code to open doors."))
    return person


@blp.get("/me/code")
@blp.response(200, ResidentCodeSchema)
def my_code() -> Any:
    """Your "scan to open" code: it changes every 30 s, so a screenshot soon stops working."""
    token, valid_until = pass_verification.resident_code(_own_person())
    db.session.commit()
    return {
        "token": token,
        "valid_until": valid_until,
        "step_s": pass_verification.RESIDENT_CODE_STEP_S,
    }


@blp.get("/me/code.svg")
@blp.response(200, content_type="image/svg+xml")
def my_code_svg() -> Response:
    """Your current code as a QR image (the portal reloads it every step)."""
    token, _until = pass_verification.resident_code(_own_person())
    db.session.commit()
    return Response(qrimages.svg(token), mimetype="image/svg+xml", headers=_NO_STORE)
