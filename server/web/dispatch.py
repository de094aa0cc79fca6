"""Dispatch on the officer's pages: the duty toggle on the console, and on an alert's page
who it was dispatched to, "dispatch the nearest" and the officers on duty to pick from
(``server.alerts.dispatch``; docs/alerts.md, "Dispatch").

The console hears dispatches live (``static/dispatch.js``, from the alerts stream that
``static/officer.js`` reads): the assignee gets a banner and a tone, and a dispatch nobody
acknowledged in time shows on every console of the community.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from gatekeeper.vocabulary import AlertStatus
from server.alerts import dispatch as alert_dispatch
from server.core.errors import Forbidden, NotFound
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessPoint, Alert, User, UserRole
from server.web import bp
from server.web.helpers import attempt, current_scope, flash_error, flash_ok, scope_for


def _officer_desk() -> Scope:
    return scope_for(UserRole.OFFICER, UserRole.ADMIN)


@bp.app_template_global("duty_view")
def duty_view() -> dict[str, Any] | None:
    """The console's duty toggle: None for anyone but an officer."""
    if not current_user.is_authenticated or current_user.role is not UserRole.OFFICER:
        return None
    scope = current_scope()
    duty = alert_dispatch.duty_of(current_user.id)
    points = list(
        db.session.scalars(scope.query(AccessPoint).order_by(AccessPoint.name, AccessPoint.id))
    )
    return {
        "on_duty": bool(duty and duty.on_duty),
        "access_point_id": duty.access_point_id if duty else None,
        "points": points,
    }


@bp.app_template_global("dispatch_view")
def dispatch_view(alert: Alert) -> dict[str, Any]:
    """The alert page's dispatch panel."""
    assignee = db.session.get(User, alert.assignee_id) if alert.assignee_id else None
    by = db.session.get(User, alert.assigned_by_id) if alert.assigned_by_id else None
    open_ = alert.status is not AlertStatus.RESOLVED
    return {
        "assignee": (assignee.display_name or assignee.username) if assignee else None,
        "by": (by.display_name or by.username) if by else None,
        "mine": bool(
            assignee
            and assignee.id == current_user.id
            and alert.assignment_acknowledged_at is None
            and open_
        ),
        "candidates": alert_dispatch.officers_on_duty(alert) if open_ else [],
        "open": open_,
    }


@bp.post("/officer/duty")
@login_required
def officer_duty() -> Response:
    scope = current_scope()
    on_duty = request.form.get("on_duty") == "1"
    point_id = (request.form.get("access_point_id") or "").strip()
    position = {"access_point_id": point_id} if point_id else None
    try:
        alert_dispatch.set_duty(scope, on_duty, position)
        db.session.commit()
    except NotFound:
        db.session.rollback()
        flash_error(_("Choose an access point of a community you cover."))
        return redirect(url_for("web.officer_console"), 303)
    except Forbidden:
        db.session.rollback()
        raise NotFound(_("No such page.")) from None
    flash_ok(_("You are on duty.") if on_duty else _("You are off duty."))
    return redirect(url_for("web.officer_console"), 303)


@bp.post("/alerts/<alert_id>/dispatch")
@login_required
def alert_dispatch_form(alert_id: str) -> Response:
    scope = _officer_desk()
    officer_id = (request.form.get("officer_id") or "").strip() or None

    def done(alert: Alert) -> str:
        officer = db.session.get(User, alert.assignee_id)
        name = officer.display_name or officer.username if officer else ""
        return _("Dispatched to %(officer)s.", officer=name)

    attempt(lambda: alert_dispatch.dispatch(scope, alert_id, officer_id), done)
    return redirect(url_for("web.alert_page", alert_id=alert_id), 303)


@bp.post("/alerts/<alert_id>/dispatch/accept")
@login_required
def alert_dispatch_accept(alert_id: str) -> Response:
    scope = _officer_desk()
    attempt(
        lambda: alert_dispatch.accept(scope, alert_id, request.form.get("note")),
        _("You acknowledged the dispatch."),
    )
    return redirect(url_for("web.alert_page", alert_id=alert_id), 303)
