"""The door intercom's pages: the ring on every page of the resident's portal, and the guard
booth.

Every page of the resident's portal (the home page ``home_resident.html`` and every page on
``portal_base.html``) carries a ring panel, one stream per open page, counted against the
ring's own budget (``intercom.RING_STREAMS``) so it never takes a live page's place:
``static/intercom.js`` follows ``/my/intercom/live`` (their own unit's calls only,
``intercom.unit_subscriber``) and, while a call rings, shows a banner at the top of the
screen (and in the tab's title) with the door's name, the visitor's snapshot and two buttons:
open and refuse (``POST /intercom/calls/<id>/answer``). The guard booth's console
(``/communities/<cid>/intercom``, staff and admins) lists the community's live calls, rung
or rolled over to it, with the same buttons, and follows the ``intercom`` feed. Pictures
come from ``/intercom/calls/<id>/snapshot`` for those who may see the call, while the
community keeps them (``intercom.snapshot_available``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.wrappers import Response

from gatekeeper.vocabulary import IntercomStatus
from server.access import intercom
from server.community import settings as community_settings
from server.core import live
from server.core.errors import DomainError, NotFound
from server.core.wording import word
from server.extensions import db
from server.models import Community, UserRole, utcnow
from server.web import bp
from server.web.helpers import current_scope, flash_error, flash_ok, scope_for
from server.web.live import stream_url

# What a resident or a guard reads after answering.
ANSWER_WORDS = {
    "open": _l("The door is opening for your visitor."),
    "refuse": _l("You declined the call."),
    "not_opened": _l("The door cannot be opened now."),
}


@bp.get("/my/intercom/live")
@login_required
def portal_intercom_live() -> Response:
    """A resident's stream of the calls to their unit (SSE, event ``intercom``)."""
    scope = current_scope()
    subscriber = intercom.unit_subscriber(scope)
    return live.respond(
        live.broadcaster(),
        subscriber,
        current_app.config["SETTINGS"].page_streams_per_process,
        lambda since: live.resume(subscriber, since),
    )


def ring_stream_url() -> str | None:
    """The ring panel's stream for the signed-in resident, resuming far enough back to ring
    for a call that began before the page opened; None for other accounts."""
    scope = current_scope()
    unit = scope.user.unit if scope.role is UserRole.RESIDENT else None
    if unit is None:
        return None
    community = db.session.get(Community, unit.community_id)
    ring_s = community_settings.effective(community.settings).intercom_ring_seconds
    since = utcnow() - timedelta(seconds=ring_s)
    path = url_for("web.portal_intercom_live", last_event_id=live.event_id_at(since))
    return (live.stream_origin() or "") + path


@bp.app_template_global("intercom_ring_stream")
def intercom_ring_stream() -> str | None:
    return ring_stream_url()


@bp.get("/intercom/calls/<call_id>/snapshot")
@login_required
def intercom_snapshot(call_id: str) -> Any:
    """The visitor's picture, for the unit's accounts and the community's staff."""
    call = intercom.get_call(current_scope(), call_id)
    intercom.settle(call)  # a call whose time is up is over: its picture's time runs
    db.session.commit()
    if not intercom.snapshot_available(call):
        raise NotFound(_l("This call has no picture (any more)."))
    return call.snapshot, 200, {"Content-Type": "image/jpeg", "Cache-Control": "private, no-store"}


@bp.post("/intercom/calls/<call_id>/answer")
@login_required
def intercom_answer(call_id: str) -> Any:
    """Open or refuse (form field ``action``); JSON for the pages' script, else back."""
    scope = current_scope()
    action = request.form.get("action", "")
    wants_json = request.accept_mimetypes.best == "application/json"
    if action not in ANSWER_WORDS or action == "not_opened":
        message = _("Choose to open or to refuse.")
        if wants_json:
            return jsonify({"ok": False, "message": message}), 422
        flash_error(message)
        return redirect(_back(), 303)
    try:
        result = intercom.answer(scope, call_id, open_door=action == "open")
        db.session.commit()
    except NotFound:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        if wants_json:
            return jsonify({"ok": False, "message": str(error.detail)}), error.status
        flash_error(error.detail)
        return redirect(_back(), 303)
    key = action if action == "refuse" or result.opened else "not_opened"
    message = str(ANSWER_WORDS[key])
    if wants_json:
        return jsonify({"ok": True, "opened": result.opened, "message": message})
    flash_ok(message)
    return redirect(_back(), 303)


def _back() -> str:
    """Where a form answer returns: the guard booth, or the resident's home."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("web.home")


@bp.get("/communities/<cid>/intercom")
@login_required
def intercom_console(cid: str) -> Any:
    """The guard booth: the community's live calls, with open and refuse."""
    scope = scope_for(UserRole.STAFF, UserRole.ADMIN)
    community = scope.get(Community, cid)
    calls = intercom.live_calls(scope, community.id)
    db.session.commit()  # what time did to them (rolled over, timed out)
    return (
        render_template(
            "intercom_console.html",
            community=community,
            calls=[intercom.call_payload(call) for call in calls],
            statuses={status.value: word(status) for status in IntercomStatus},
            stream=stream_url(scope, community.id, "intercom"),
        ),
        200,
        {"Cache-Control": "no-store"},
    )
