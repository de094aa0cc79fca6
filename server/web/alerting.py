"""Where a community's alerts go and what raises them, for the property office: its webhooks
(the signing secret shown once) and its patrol routes (checkpoints, round length, schedule).

Webhooks are the staff's and admins' alone. Patrol routes: staff and admins change them,
officers read them (as in the API); residents find neither page. The changes are the alert
room's (``server.alerts.service``, ``server.alerts.patrols``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from server.alerts import patrol_rounds, patrols
from server.alerts import service as alerts
from server.api.alerts import WebhookInputSchema
from server.api.patrols import PatrolRoutePatchSchema, PatrolRouteSchema
from server.core.errors import DomainError
from server.core.scope import Scope
from server.extensions import db
from server.models import Community, Device, PatrolRoute, RfidTag, UserRole, Webhook
from server.people import service as people
from server.web import bp
from server.web.helpers import (
    add_error,
    attempt,
    current_scope,
    desk_scope,
    flash_ok,
    load_form,
    merge_errors,
    names_by_id,
    refusal_errors,
    save_form,
    schedule_windows,
    scope_for,
    stand_in,
    window_rows,
)
from server.web.people import WEEKDAYS

_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_FRIENDLY = {
    "url": _l("Enter a full address starting with https:// (or http://), at most 500 characters."),
    "name": _l("Enter a name (at most 80 characters)."),
    "round_minutes": _l("A round lasts 5 to 1440 minutes."),
    "checkpoint_device_ids": _l("Give at most 50 checkpoints a place in the round."),
}


def _staff() -> Scope:
    return scope_for(UserRole.STAFF, UserRole.ADMIN)


def _field(key: str) -> str:
    return key or "form"


# Webhooks -------------------------------------------------------------------------------------


def _webhooks_page(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    created: tuple[Webhook, str] | None = None,
) -> str:
    return render_template(
        "webhooks.html",
        community=community,
        webhooks=alerts.webhooks_of(scope, community.id),
        values=values or MultiDict(),
        errors=errors or {},
        created=created,
    )


@bp.get("/communities/<cid>/webhooks")
@login_required
def webhooks(cid: str) -> str:
    scope = _staff()
    return _webhooks_page(scope, scope.get(Community, cid))


@bp.post("/communities/<cid>/webhooks")
@login_required
def webhook_create(cid: str) -> Any:
    """Add a webhook and show its signing secret, this once."""
    scope = _staff()
    community = scope.get(Community, cid)
    errors: dict[str, list[str]] = {}
    try:
        data = WebhookInputSchema().load({"url": request.form.get("url", "").strip()})
    except ma.ValidationError as error:
        merge_errors(errors, error.messages, _field, _FRIENDLY)
    else:
        created = save_form(
            lambda: alerts.create_webhook(scope, community.id, data["url"]),
            errors,
            lambda error: refusal_errors(errors, error, _field, "url"),
        )
        if created is not None:
            body = _webhooks_page(scope, community, created=created)
            return Response(body, mimetype="text/html", headers=_PRIVATE)
    community = scope.get(Community, cid)
    return _webhooks_page(scope, community, request.form, errors), 422


@bp.post("/webhooks/<wid>/delete")
@login_required
def webhook_delete(wid: str) -> Response:
    scope = _staff()
    webhook = scope.get(Webhook, wid)
    community_id, url = webhook.community_id, webhook.url
    attempt(
        lambda: alerts.delete_webhook(scope, webhook.id),
        _("Alerts are no longer sent to %(url)s.", url=url),
    )
    return redirect(url_for("web.webhooks", cid=community_id), 303)


# Patrol routes --------------------------------------------------------------------------------


@bp.get("/communities/<cid>/patrol-routes")
@login_required
def patrol_routes(cid: str) -> str:
    """The routes (officers read them); staff also find the links to change them."""
    scope = desk_scope()
    community = scope.get(Community, cid)
    routes = patrols.routes(scope, community.id)
    names = names_by_id(
        Device.id, Device.name, (i for route in routes for i in route.checkpoint_device_ids)
    )
    return render_template(
        "patrol_routes.html",
        community=community,
        routes=routes,
        names=names,
        can_change=scope.can_write(PatrolRoute),
        readers=patrols.checkpoint_readers(scope, community.id),
    )


def _checkpoints(
    scope: Scope, community_id: str, route: PatrolRoute | None
) -> list[tuple[str, str]]:
    """(device id, name) of every reader the form offers: the checkpoint readers, and any
    device the route lists already that is no longer one (so that it can be taken off)."""
    readers = [(d.id, d.name) for d in patrols.checkpoint_readers(scope, community_id)]
    known = {ident for ident, _name in readers}
    listed = [i for i in (route.checkpoint_device_ids if route else []) if i not in known]
    names = names_by_id(Device.id, Device.name, listed)
    return readers + [(ident, names.get(ident, ident)) for ident in listed]


def _route_values(route: PatrolRoute | None) -> MultiDict[str, str]:
    if route is None:
        return MultiDict({"round_minutes": "60"})
    values = MultiDict({"name": route.name, "round_minutes": str(route.round_minutes)})
    if route.ordered:
        values["ordered"] = "on"
    for place, ident in enumerate(route.checkpoint_device_ids, start=1):
        values[f"cp_{ident}"] = str(place)
    return values


def _route_data(
    form: MultiDict[str, str],
    offered: list[tuple[str, str]],
    creating: bool,
    errors: dict[str, list[str]],
) -> dict[str, Any] | None:
    """The form as the service's input, or None with every message in ``errors``.

    Each offered reader has a place in the round (1 first); a reader without one is not on
    the route. Readers given the same place keep the form's order.
    """
    name = form.get("name", "").strip()
    if not name:
        add_error(errors, "name", _FRIENDLY["name"])
    payload: dict[str, Any] = {"name": stand_in(name)}
    minutes = form.get("round_minutes", "").strip()
    try:
        payload["round_minutes"] = int(minutes)
    except ValueError:
        add_error(errors, "round_minutes", _FRIENDLY["round_minutes"])
    else:
        if not 5 <= payload["round_minutes"] <= 24 * 60:
            add_error(errors, "round_minutes", _FRIENDLY["round_minutes"])
            del payload["round_minutes"]
    places: list[tuple[int, int, str]] = []
    for order, (ident, _name) in enumerate(offered):
        text = form.get(f"cp_{ident}", "").strip()
        if not text:
            continue
        try:
            places.append((int(text), order, ident))
        except ValueError:
            add_error(
                errors,
                "checkpoint_device_ids",
                _("A place in the round is a whole number: 1 for the first checkpoint."),
            )
    if not places and not errors.get("checkpoint_device_ids"):
        add_error(
            errors,
            "checkpoint_device_ids",
            _("Give at least one checkpoint a place in the round."),
        )
    payload["checkpoint_device_ids"] = [ident for _place, _order, ident in sorted(places)]
    payload["ordered"] = form.get("ordered") == "on"
    windows, kept = schedule_windows(form, errors)
    payload["schedule"] = windows or None
    schema = PatrolRouteSchema() if creating else PatrolRoutePatchSchema()
    return load_form(schema, payload, errors, kept, _field, _FRIENDLY)


def _route_page(
    scope: Scope,
    community: Community,
    route: PatrolRoute | None,
    values: MultiDict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
) -> tuple[str, int]:
    posted = request.method == "POST"
    return render_template(
        "patrol_route.html",
        community=community,
        route=route,
        values=values,
        errors=errors,
        checkpoints=_checkpoints(scope, community.id, route),
        windows=window_rows(route.schedule if route else None, values if posted else None),
        weekdays=WEEKDAYS,
    ), status


def _route_refused(errors: dict[str, list[str]], error: DomainError) -> None:
    refusal_errors(
        errors,
        error,
        lambda key: "schedule" if key.startswith("schedule") else _field(key),
        "name",
    )


@bp.route("/communities/<cid>/patrol-routes/new", methods=["GET", "POST"])
@login_required
def patrol_route_new(cid: str) -> Any:
    scope = _staff()
    community = scope.get(Community, cid)
    if request.method == "GET":
        return _route_page(scope, community, None, _route_values(None), {})
    errors: dict[str, list[str]] = {}
    data = _route_data(request.form, _checkpoints(scope, community.id, None), True, errors)
    route = None
    if data is not None:
        route = save_form(
            lambda: patrols.create(scope, community.id, data),
            errors,
            lambda error: _route_refused(errors, error),
        )
    if route is None:
        community = scope.get(Community, cid)
        return _route_page(scope, community, None, request.form, errors, 422)
    flash_ok(_("Patrol route %(name)s added.", name=route.name))
    return redirect(url_for("web.patrol_routes", cid=community.id), 303)


@bp.route("/patrol-routes/<rid>", methods=["GET", "POST"])
@login_required
def patrol_route_page(rid: str) -> Any:
    scope = _staff()
    route = scope.get(PatrolRoute, rid)
    community = db.session.get(Community, route.community_id)
    if request.method == "GET":
        return _route_page(scope, community, route, _route_values(route), {})
    errors: dict[str, list[str]] = {}
    data = _route_data(request.form, _checkpoints(scope, community.id, route), False, errors)
    saved = None
    if data is not None:
        saved = save_form(
            lambda: patrols.update(scope, route.id, data),
            errors,
            lambda error: _route_refused(errors, error),
        )
    if saved is None:
        route = scope.get(PatrolRoute, rid)
        community = db.session.get(Community, route.community_id)
        return _route_page(scope, community, route, request.form, errors, 422)
    flash_ok(_("Saved."))
    return redirect(url_for("web.patrol_routes", cid=community.id), 303)


@bp.post("/patrol-routes/<rid>/delete")
@login_required
def patrol_route_delete(rid: str) -> Response:
    scope = _staff()
    route = scope.get(PatrolRoute, rid)
    community_id, name = route.community_id, route.name
    attempt(
        lambda: patrols.delete(scope, route.id),
        _("Patrol route %(name)s deleted.", name=name),
    )
    return redirect(url_for("web.patrol_routes", cid=community_id), 303)


@bp.app_template_filter("patrol_clock")
def patrol_clock(value: datetime, zone: str) -> str:
    """A time in a round: the 24-hour clock in the community's zone."""
    return value.astimezone(ZoneInfo(zone)).strftime("%H:%M")


@bp.get("/patrol-routes/<rid>/rounds")
@login_required
def patrol_route_rounds(rid: str) -> str:
    """A route's rounds of the last day and the one under way: each checkpoint read (when,
    by which guard) and those missed, in the community's zone (officers read it too)."""
    scope = desk_scope()
    route = scope.get(PatrolRoute, rid)
    community = db.session.get(Community, route.community_id)
    names = names_by_id(Device.id, Device.name, route.checkpoint_device_ids)
    return render_template(
        "patrol_rounds.html",
        community=community,
        route=route,
        names=names,
        rounds=patrol_rounds.recent(scope, route.id),
        hours=patrol_rounds.RECENT_HOURS,
        can_change=scope.can_write(PatrolRoute),
    )


@bp.post("/tags/<crid>/guard")
@login_required
def tag_guard(crid: str) -> Response:
    """Mark an RFID tag a guard's (only those count at patrol checkpoints), or no longer."""
    scope = current_scope()
    tag = scope.get(RfidTag, crid)
    guard = request.form.get("guard") == "1"
    attempt(
        lambda: people.update_credential(scope, RfidTag, tag.id, {"guard": guard}),
        _("Tag %(value)s is a guard's: it counts at patrol checkpoints.", value=tag.epc)
        if guard
        else _("Tag %(value)s is no longer a guard's.", value=tag.epc),
    )
    return redirect(url_for("web.person_page", pid=tag.person_id, _anchor="credentials"), 303)
