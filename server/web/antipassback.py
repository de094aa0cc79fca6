"""Anti-passback for the property office: a community's gate pairs, who is inside each, a
form for a new pair and a reset for a person (staff and admins; others find no page).

The changes are ``server.access.antipassback``'s, audited there (``docs/policy.md``).
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from gatekeeper.antipassback import PassbackMode
from server.access import antipassback
from server.api.antipassback import AntiPassbackPairSchema
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessPoint,
    AntiPassbackPair,
    AntiPassbackState,
    Community,
    Person,
    UserRole,
)
from server.web import bp
from server.web.helpers import (
    add_error,
    attempt,
    current_scope,
    flash_ok,
    load_form,
    refusal_errors,
    save_form,
    scope_for,
    stand_in,
)

_FRIENDLY = {
    "name": _l("Enter a name (at most 80 characters)."),
    "entry_point_id": _l("Choose the access point where people enter."),
    "exit_point_id": _l("Choose the access point where people leave."),
    "forgive_minutes": _l("Forgive after 1 to 10080 minutes, or leave it empty for never."),
}


def _field(key: str) -> str:
    """The form's input for a message's key (``directional`` is the exit's choice)."""
    return "exit_point_id" if key == "directional" else key


def _staff() -> Scope:
    return scope_for(UserRole.STAFF, UserRole.ADMIN)


def _points(scope: Scope, community_id: str) -> list[AccessPoint]:
    return list(
        db.session.scalars(
            scope.query(AccessPoint)
            .where(AccessPoint.community_id == community_id)
            .order_by(AccessPoint.name, AccessPoint.id)
        )
    )


def _page(
    scope: Scope,
    community: Community,
    values: Any,
    errors: dict[str, list[str]],
    status: int = 200,
) -> tuple[str, int]:
    pairs = antipassback.pairs(scope, community.id)
    inside = {pair.id: antipassback.inside(scope, pair.id) for pair in pairs}
    person_ids = {state.person_id for states in inside.values() for state in states}
    people = {
        person.id: person
        for person in db.session.scalars(select(Person).where(Person.id.in_(person_ids)))
    }
    points = _points(scope, community.id)
    return render_template(
        "antipassback.html",
        community=community,
        pairs=pairs,
        inside=inside,
        people=people,
        points=points,
        point_names={point.id: point.name for point in points},
        modes=list(PassbackMode),
        values=values,
        errors=errors,
    ), status


@bp.get("/communities/<cid>/anti-passback")
@login_required
def anti_passback(cid: str) -> Any:
    scope = _staff()
    community = scope.get(Community, cid)
    return _page(scope, community, {"mode": PassbackMode.HARD.value}, {})


@bp.post("/communities/<cid>/anti-passback")
@login_required
def anti_passback_new(cid: str) -> Any:
    scope = _staff()
    community = scope.get(Community, cid)
    form = request.form
    errors: dict[str, list[str]] = {}
    name = form.get("name", "").strip()
    payload: dict[str, Any] = {
        "name": stand_in(name),
        "entry_point_id": form.get("entry_point_id", ""),
        "exit_point_id": form.get("exit_point_id", ""),
        "mode": form.get("mode", ""),
    }
    if not name:
        add_error(errors, "name", _FRIENDLY["name"])
    minutes = form.get("forgive_minutes", "").strip()
    if minutes:
        try:
            payload["forgive_minutes"] = int(minutes)
        except ValueError:
            add_error(errors, "forgive_minutes", _FRIENDLY["forgive_minutes"])
    else:
        payload["forgive_minutes"] = None
    if payload["entry_point_id"] and payload["entry_point_id"] == payload["exit_point_id"]:
        payload["directional"] = True  # the form says so under the choice
    data = load_form(AntiPassbackPairSchema(), payload, errors, [], _field, _FRIENDLY)
    pair = None
    if data is not None:
        pair = save_form(
            lambda: antipassback.create(scope, community.id, data),
            errors,
            lambda error: refusal_errors(errors, error, _field),
        )
    if pair is None:
        community = scope.get(Community, cid)
        return _page(scope, community, form, errors, 422)
    flash_ok(_("Gate pair %(name)s added.", name=pair.name))
    return redirect(url_for("web.anti_passback", cid=community.id), 303)


@bp.post("/anti-passback-pairs/<pair_id>/delete")
@login_required
def anti_passback_delete(pair_id: str) -> Response:
    scope = _staff()
    pair = scope.get(AntiPassbackPair, pair_id)
    community_id, name = pair.community_id, pair.name
    attempt(
        lambda: antipassback.delete(scope, pair.id),
        _("Gate pair %(name)s deleted.", name=name),
    )
    return redirect(url_for("web.anti_passback", cid=community_id), 303)


@bp.post("/anti-passback-pairs/<pair_id>/reset/<pid>")
@login_required
def anti_passback_reset(pair_id: str, pid: str) -> Response:
    """Let one person in again at one pair (they are taken as outside)."""
    scope = _staff()
    pair = scope.get(AntiPassbackPair, pair_id)
    person = scope.get(Person, pid)
    attempt(
        lambda: antipassback.reset(scope, person.id, pair.id),
        _("%(name)s may enter through %(pair)s again.", name=person.name, pair=pair.name),
    )
    if request.form.get("back") == "person":
        return redirect(url_for("web.person_page", pid=person.id, _anchor="anti-passback"), 303)
    return redirect(url_for("web.anti_passback", cid=pair.community_id), 303)


@bp.app_template_global()
def anti_passback_inside(person: Person) -> list[tuple[AntiPassbackPair, Any]]:
    """For the person's page: the pairs they are inside of, with their state (staff and
    admins; nothing for others, who may not reset)."""
    scope = current_scope()
    if not scope.can_write(AntiPassbackState):
        return []
    states = [s for s in antipassback.person_states(scope, person.id) if s.inside]
    pairs = {
        pair.id: pair
        for pair in db.session.scalars(
            scope.query(AntiPassbackPair).where(
                AntiPassbackPair.id.in_([s.pair_id for s in states])
            )
        )
    }
    return [(pairs[s.pair_id], s) for s in states if s.pair_id in pairs]
