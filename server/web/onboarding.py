"""Onboarding pages: a resident's login and activation link, the lobby's invitation and the
registration form it opens, the registrant's own status page, and the staff's queue.

The public pages (``/join/...``, ``/activate/...``) need no login: their URLs hold the
secret (the lobby's code is public and grants nothing but the form). They speak the
visitor's language, else the community's default, else Chinese, and are never cached.
"""

from __future__ import annotations

import base64
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.datastructures import FileStorage

from gatekeeper.identity import DocumentType, mask_name
from server.core import i18n
from server.core.auth import start_web_session
from server.core.errors import DomainError, Invalid, NotFound
from server.core.localtime import parse_local_time
from server.core.ratelimits import registering
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    Building,
    Community,
    Person,
    RegistrationLink,
    RegistrationRequest,
    RegistrationStatus,
    Unit,
    User,
    UserRole,
)
from server.passes import images as qrimages
from server.people import onboarding
from server.people.onboarding import SELF_REGISTRATION_ROLES
from server.web import bp
from server.web.helpers import (
    add_error,
    buildings_of,
    flash_error,
    flash_ok,
    flatten_messages,
    scope_for,
    user_names,
    zone_of,
)

# Secret links must not leak through the Referer header, caches or search engines.
_PRIVATE = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
# The largest selfie a phone sends (the face check reads at most 8 MiB too).
MAX_SELFIE_BYTES = 8 * 1024 * 1024


@bp.app_template_filter("local_date")
def local_date(value: datetime | None, zone: str, *, last_day: bool = False) -> str:
    """A UTC time as a ``date`` input's value in the community's zone ("" for none).

    ``last_day``: the time is the end of a last day (00:00 the day after), shown as that day.
    """
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(zone))
    if last_day and local.time() == time():
        local -= timedelta(days=1)
    return local.date().isoformat()


def _staff() -> Scope:
    return scope_for(UserRole.STAFF, UserRole.ADMIN)


def _png_data_uri(text: str) -> str:
    """A QR code of ``text`` as an ``img`` source (the page's CSP allows data: images)."""
    return "data:image/png;base64," + base64.b64encode(qrimages.png(text)).decode()


def _private(body: str, status: int = 200) -> Response:
    return Response(body, status=status, headers=_PRIVATE)


# A resident's login (from the person page) --------------------------------------------------


@bp.post("/people/<pid>/account")
@login_required
def person_account(pid: str) -> Any:
    """Create the person's login (or a fresh link for one never activated) and show the
    one-time activation link and its QR code, once."""
    scope = _staff()
    username = request.form.get("username", "")
    try:
        invitation = onboarding.invite_resident(scope, pid, username)
        db.session.commit()
    except NotFound:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        person = scope.get(Person, pid)
        errors = flatten_messages(error.extensions.get("errors") or {"form": [error.detail]})
        body = render_template(
            "account_invitation.html",
            person=person,
            invitation=None,
            errors=errors,
            username=username,
        )
        return body, error.status
    link = url_for("web.activate_account", token=invitation.token, _external=True)
    person = scope.get(Person, pid)
    community = db.session.get(Community, person.community_id)
    body = render_template(
        "account_invitation.html",
        person=person,
        community=community,
        invitation=invitation,
        link=link,
        qr=_png_data_uri(link),
        errors={},
        username=invitation.user.username,
    )
    return _private(body)


@bp.route("/activate/<token>", methods=["GET", "POST"])
def activate_account(token: str) -> Any:
    """The resident's first visit: choose a password, then they are signed in."""
    activation = onboarding.activation_by_token(token)
    community = db.session.get(Community, activation.community_id)
    i18n.use_community(community)
    user = db.session.get(User, activation.user_id)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            user = onboarding.activate(
                token, request.form.get("password", ""), request.form.get("confirmation", "")
            )
            start_web_session(user)
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            errors = flatten_messages(error.extensions.get("errors") or {"form": [error.detail]})
        else:
            flash_ok(_("Your password is set. Welcome!"))
            return redirect(url_for("web.home"))
    body = render_template(
        "activate.html", community=community, username=user.username, errors=errors
    )
    return _private(body, 422 if errors else 200)


# The lobby's invitation and the registration form --------------------------------------------


def _join_values(form: Any, zone: Any, errors: dict[str, list[str]]) -> dict[str, Any]:
    """The form's answers as the service reads them; dates that are not dates are errors."""
    data: dict[str, Any] = {
        key: form.get(key, "")
        for key in ("name", "phone", "unit_id", "role", "document_type", "document_number")
    }
    data["face_consent"] = form.get("face_consent") == "yes"
    for key, end_of_day in (("lease_starts_at", False), ("lease_ends_at", True)):
        text = form.get(key, "").strip()
        if not text:
            data[key] = None
            continue
        try:
            data[key] = parse_local_time(text, zone, end_of_day=end_of_day)
        except ValueError:
            add_error(errors, key, _("Enter a date like 2026-12-01."))
            data[key] = None
    return data


def _selfie(errors: dict[str, list[str]]) -> bytes | None:
    upload: FileStorage | None = request.files.get("selfie")
    if upload is None or not upload.filename:
        return None
    content = upload.read(MAX_SELFIE_BYTES + 1)
    if len(content) > MAX_SELFIE_BYTES:
        add_error(errors, "selfie", _("The photo is larger than 8 MB."))
        return None
    return content


def _join_page(
    link: RegistrationLink, values: Any, errors: dict[str, list[str]], status: int
) -> Response:
    community = onboarding.community_of(link)
    body = render_template(
        "join.html",
        link=link,
        community=community,
        building=db.session.get(Building, link.building_id) if link.building_id else None,
        buildings=onboarding.units_for(link),
        roles=SELF_REGISTRATION_ROLES,
        document_types=list(DocumentType),
        values=values,
        errors=errors,
    )
    return _private(body, status)


@bp.get("/join/<code>")
def join(code: str) -> Response:
    link = onboarding.link_by_code(code)
    i18n.use_community(onboarding.community_of(link))
    return _join_page(link, {}, {}, 200)


@bp.post("/join/<code>")
@registering
def join_submit(code: str) -> Response:
    link = onboarding.link_by_code(code)
    community = onboarding.community_of(link)
    i18n.use_community(community)
    if request.form.get("website"):  # a field people never see: only robots fill it in
        abort(400)
    errors: dict[str, list[str]] = {}
    data = _join_values(request.form, zone_of(community), errors)
    selfie = _selfie(errors)
    try:
        registration = onboarding.submit_registration(link, data, selfie)
        if errors:
            raise Invalid(_("Some answers need another look."), errors={})
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        for field, texts in flatten_messages(error.extensions.get("errors") or {}).items():
            for text in texts:
                if text not in errors.get(field, []):
                    add_error(errors, field, text)
        if not errors:
            add_error(errors, "form", str(error.detail))
        return _join_page(link, request.form, errors, 422)
    return redirect(url_for("web.join_status", token=registration.token), 303)


@bp.get("/join/<code>/qr.png")
def join_qr(code: str) -> Response:
    link = onboarding.link_by_code(code)
    target = url_for("web.join", code=link.code, _external=True)
    return Response(qrimages.png(target), mimetype="image/png")


@bp.get("/join/status/<token>")
def join_status(token: str) -> Response:
    """The registrant's own page: waiting, approved (then the place to set a password), or
    refused with the office's reason."""
    registration = onboarding.request_by_token(token)
    community = db.session.get(Community, registration.community_id)
    i18n.use_community(community)
    can_activate = False
    if registration.status is RegistrationStatus.APPROVED:
        try:
            onboarding.activation_by_token(token)
            can_activate = True
        except NotFound:
            can_activate = False
    unit = db.session.get(Unit, registration.unit_id)
    body = render_template(
        "join_status.html",
        registration=registration,
        community=community,
        unit=unit,
        building=db.session.get(Building, unit.building_id) if unit else None,
        token=token,
        can_activate=can_activate,
        status_url=url_for("web.join_status", token=token, _external=True),
    )
    return _private(body)


# The staff's side: links and the queue ------------------------------------------------------


@bp.get("/communities/<cid>/registrations")
@login_required
def registrations(cid: str) -> str:
    scope = _staff()
    community = scope.get(Community, cid)
    links = list(
        db.session.scalars(
            scope.query(RegistrationLink)
            .where(RegistrationLink.community_id == community.id)
            .order_by(RegistrationLink.created_at.desc())
        )
    )
    pending = onboarding.pending_requests(scope, community.id)
    decided = list(
        db.session.scalars(
            scope.query(RegistrationRequest)
            .where(
                RegistrationRequest.community_id == community.id,
                RegistrationRequest.status != RegistrationStatus.PENDING,
            )
            .order_by(RegistrationRequest.reviewed_at.desc())
            .limit(20)
        )
    )
    buildings = buildings_of(scope, community.id)
    units = {
        u.id: u
        for u in db.session.scalars(
            scope.query(Unit).where(Unit.id.in_({r.unit_id for r in pending + decided}))
        )
    }
    return render_template(
        "registrations.html",
        community=community,
        links=links,
        pending=pending,
        decided=decided,
        buildings=buildings,
        building_names={b.id: b.name for b in buildings},
        units=units,
        reviewers=user_names(r.reviewed_by_id for r in decided),
    )


@bp.post("/communities/<cid>/registration-links")
@login_required
def registration_link_create(cid: str) -> Response:
    scope = _staff()
    try:
        link = onboarding.create_registration_link(
            scope, cid, request.form.get("building_id") or None
        )
        db.session.commit()
    except NotFound:
        raise
    except DomainError as error:
        db.session.rollback()
        flash_error(error.detail)
        return redirect(url_for("web.registrations", cid=cid))
    return redirect(url_for("web.registration_poster", lid=link.id))


@bp.post("/registration-links/<lid>/disable")
@login_required
def registration_link_disable(lid: str) -> Response:
    scope = _staff()
    link = onboarding.disable_registration_link(scope, lid)
    db.session.commit()
    flash_ok(_("The invitation no longer opens the form."))
    return redirect(url_for("web.registrations", cid=link.community_id))


@bp.get("/registration-links/<lid>/poster")
@login_required
def registration_poster(lid: str) -> str:
    """A page to print and hang in the lobby: the QR code, the address and what to bring."""
    scope = _staff()
    link = scope.get(RegistrationLink, lid)
    community = db.session.get(Community, link.community_id)
    target = url_for("web.join", code=link.code, _external=True)
    return render_template(
        "registration_poster.html",
        link=link,
        community=community,
        building=db.session.get(Building, link.building_id) if link.building_id else None,
        target=target,
        qr=_png_data_uri(target),
    )


def _review_page(
    scope: Scope, registration: RegistrationRequest, errors: dict[str, list[str]], status: int = 200
) -> tuple[str, int]:
    community = db.session.get(Community, registration.community_id)
    unit = db.session.get(Unit, registration.unit_id)
    buildings = []
    for building in buildings_of(scope, community.id):
        units = list(
            db.session.scalars(
                scope.query(Unit).where(Unit.building_id == building.id).order_by(Unit.number)
            )
        )
        buildings.append((building, units))
    return render_template(
        "registration.html",
        registration=registration,
        community=community,
        unit=unit,
        building=db.session.get(Building, unit.building_id) if unit else None,
        buildings=buildings,
        roles=SELF_REGISTRATION_ROLES,
        look_alike=onboarding.look_alike(registration),
        errors=errors,
        masked=mask_name,
    ), status


@bp.get("/registrations/<rid>")
@login_required
def registration(rid: str) -> tuple[str, int]:
    scope = _staff()
    return _review_page(scope, scope.get(RegistrationRequest, rid), {})


@bp.post("/registrations/<rid>")
@login_required
def registration_decide(rid: str) -> Any:
    """Edit, approve or reject (the button pressed says which)."""
    scope = _staff()
    registration = scope.get(RegistrationRequest, rid)
    community = db.session.get(Community, registration.community_id)
    action = request.form.get("action")
    errors: dict[str, list[str]] = {}
    try:
        if action == "save" or action == "approve":
            changes = _join_values(request.form, zone_of(community), errors)
            changes = {k: v for k, v in changes.items() if k in request.form}
            if errors:
                raise Invalid(_("Some answers need another look."), errors={})
            onboarding.edit_request(scope, rid, changes)
        if action == "approve":
            onboarding.approve(scope, rid)
            message = _(
                "Approved: %(name)s can now set a password from their own page.",
                name=registration.name,
            )
        elif action == "reject":
            onboarding.reject(scope, rid, request.form.get("reason", ""))
            message = _("Rejected; the registrant sees your reason.")
        elif action == "save":
            message = _("Saved.")
        else:
            abort(400)
        db.session.commit()
    except NotFound:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        for field, texts in flatten_messages(error.extensions.get("errors") or {}).items():
            for text in texts:
                add_error(errors, field, text)
        if not errors:
            add_error(errors, "form", str(error.detail))
        registration = scope.get(RegistrationRequest, rid)
        return _review_page(scope, registration, errors, 422)
    flash_ok(message)
    return redirect(url_for("web.registrations", cid=registration.community_id))


def account_context(person: Person) -> dict[str, Any]:
    """What the person page's account section shows: the login, whether it is activated."""
    user = onboarding.account_of(person.id)
    return {
        "account": user,
        "account_pending": (
            onboarding.pending_activation(user)
            if user is not None and not user.password_set
            else None
        ),
    }
