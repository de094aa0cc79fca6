"""Lockdowns and emergency releases: the page where staff and officers start and lift them, and
the banner every console shows while one holds (``_door_modes_banner.html``, in ``base.html``).

The page is for staff, admins and officers of the community (residents find no such page);
each action is a CSRF-protected POST that calls ``server.access.doormodes``, commits, flashes
and redirects back; a refused start shows the form again with its messages.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.doormodes import EXEMPT_CHOICES, DoorModeKind, ModeScope
from gatekeeper.vocabulary import PersonRole
from server.access import doormodes
from server.api.schemas import DoorModeInputSchema
from server.core.errors import DomainError, Forbidden, NotFound
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import AccessPoint, Building, Community, DoorMode, UserRole
from server.web import bp
from server.web.helpers import current_scope, desk_scope, flash_ok, flatten_messages, user_names

PAST = 20  # lifted modes shown
_DESK = (UserRole.ADMIN, UserRole.STAFF, UserRole.OFFICER)


def exempt_choices() -> list[tuple[str, str]]:
    """The roles a lockdown may name, in words."""
    accounts = {"staff": UserRole.STAFF, "officer": UserRole.OFFICER}
    return [
        (role, word(accounts[role]) if role in accounts else word(PersonRole(role)))
        for role in EXEMPT_CHOICES
    ]


def _page(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
) -> str:
    active = doormodes.listing(scope, community.id, active=True)
    past = doormodes.listing(scope, community.id, active=False)[:PAST]
    rows = [*active, *past]
    return render_template(
        "door_modes.html",
        community=community,
        active=active,
        past=past,
        targets={row.id: doormodes.target_name(row) for row in rows},
        exempt={row.id: doormodes.exempt_words(row) for row in rows},
        names=user_names(
            [row.started_by_user_id for row in rows] + [row.lifted_by_user_id for row in rows]
        ),
        can_edit=scope.can_write(DoorMode),
        points=list(
            db.session.scalars(
                select(AccessPoint)
                .where(AccessPoint.community_id == community.id)
                .order_by(AccessPoint.name)
            )
        ),
        buildings=list(
            db.session.scalars(
                select(Building)
                .where(Building.community_id == community.id)
                .order_by(Building.name)
            )
        ),
        kinds=list(DoorModeKind),
        scopes=list(ModeScope),
        exempt_choices=exempt_choices(),
        values=values or MultiDict({"exempt_roles": ["staff", "officer"]}),
        errors=errors or {},
    )


@bp.get("/communities/<cid>/door-modes")
@login_required
def door_modes(cid: str) -> str:
    scope = desk_scope()
    return _page(scope, scope.get(Community, cid))


@bp.post("/communities/<cid>/door-modes")
@login_required
def door_mode_start(cid: str) -> Any:
    scope = desk_scope()
    community = scope.get(Community, cid)
    form = request.form
    payload: dict[str, Any] = {
        name: form.get(name, "").strip() for name in ("kind", "scope", "reason")
    }
    mode_scope = payload["scope"]
    if mode_scope == ModeScope.ACCESS_POINT:
        payload["access_point_ids"] = form.getlist("access_point_ids")
    elif mode_scope == ModeScope.BUILDING:
        payload["building_id"] = form.get("building_id", "")
    if payload["kind"] == DoorModeKind.LOCKDOWN:
        payload["exempt_roles"] = form.getlist("exempt_roles")
    try:
        data = DoorModeInputSchema().load(payload)
        row = doormodes.start(scope, community.id, data)
        db.session.commit()
    except ma.ValidationError as error:
        return _page(scope, community, form, flatten_messages(error.messages)), 422
    except (NotFound, Forbidden):
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()  # nothing half-stored
        errors = flatten_messages(error.extensions.get("errors") or {"": [error.detail]})
        return _page(scope, community, form, errors), error.status
    flash_ok(
        _(
            "%(kind)s of %(where)s started.",
            kind=word(row.kind),
            where=doormodes.target_name(row),
        )
    )
    return redirect(url_for("web.door_modes", cid=community.id), 303)


@bp.post("/door-modes/<mode_id>/lift")
@login_required
def door_mode_lift(mode_id: str) -> Response:
    scope = desk_scope()
    row = doormodes.lift(scope, mode_id)
    db.session.commit()
    flash_ok(
        _("%(kind)s of %(where)s lifted.", kind=word(row.kind), where=doormodes.target_name(row))
    )
    return redirect(url_for("web.door_modes", cid=row.community_id), 303)


def banner_modes() -> list[dict[str, Any]]:
    """What the banner shows: the modes holding now in the caller's communities (staff,
    admins and officers; nothing for anyone else or nobody signed in)."""
    if not current_user.is_authenticated or current_user.role not in _DESK:
        return []
    try:
        rows = doormodes.active_in_scope(current_scope())
    except SQLAlchemyError:  # an error page while the database is away: no banner, no 2nd error
        db.session.rollback()
        return []
    communities = (
        {
            c.id: c
            for c in db.session.scalars(
                select(Community).where(Community.id.in_({row.community_id for row in rows}))
            )
        }
        if rows
        else {}
    )
    return [
        {
            "row": row,
            "community": communities.get(row.community_id),
            "target": doormodes.target_name(row),
            "exempt": doormodes.exempt_words(row),
        }
        for row in rows
    ]


@bp.app_context_processor
def _banner() -> dict[str, Any]:
    return {"door_modes_banner": banner_modes}
