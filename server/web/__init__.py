"""Server-rendered pages: sign-in, each role's home, the resident portal, the guest's pass page.

Usable on a phone. The page modules register their routes on ``bp``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gatekeeper.vocabulary import AlertStatus
from server.core import audit, health, i18n
from server.core.auth import (
    authenticate_user,
    end_sign_ins,
    end_web_session,
    start_web_session,
)
from server.core.localtime import local_time
from server.core.problems import PROBLEM_TYPES, problem_type_page
from server.core.ratelimits import signing_in
from server.core.scope import Scope
from server.core.wording import audit_action, word
from server.extensions import db
from server.models import (
    AccessPoint,
    Alert,
    AuditEntry,
    Building,
    Community,
    Device,
    Person,
    RegistrationRequest,
    RegistrationStatus,
    Unit,
    UserRole,
    utcnow,
)
from server.web.helpers import communities_of, current_scope, flash_error

bp = Blueprint("web", __name__)


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])


# What a browser drops from a URL before it reads it (the WHATWG URL standard): tabs and
# line breaks anywhere, C0 controls and spaces at either end.
_DROPPED_ANYWHERE = str.maketrans("", "", "\t\n\r")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))


def _safe_next(target: str | None) -> str:
    """Only paths of this site: never redirect to another one after sign-in.

    The check is made on the URL the browser will follow, not on the raw text: what the
    browser drops is dropped first, and a backslash counts as the slash browsers take it
    for, so ``/\t/evil.example`` or ``/\\evil.example`` cannot become ``//evil.example``.
    """
    if not target:
        return url_for("web.home")
    followed = target.translate(_DROPPED_ANYWHERE).strip(_C0_AND_SPACE).replace("\\", "/")
    parts = urlsplit(followed)
    local = (
        not parts.scheme
        and not parts.netloc
        and followed.startswith("/")
        and not followed.startswith("//")
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in followed)
    )
    return followed if local else url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
@signing_in
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = authenticate_user(form.username.data or "", form.password.data or "")
        if user is not None:
            start_web_session(user)
            user.last_login_at = utcnow()
            audit.record(user, "auth.login", community_id=None, target=user)
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
        flash_error(_("Wrong username or password."))
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> Response:
    end_web_session()
    db.session.commit()
    return redirect(url_for("web.login"))


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere() -> Response:
    """Sign out every browser and API client of this account, this one included."""
    user = current_user._get_current_object()
    end_sign_ins(user)
    audit.record(user, "auth.sign_out_everywhere", community_id=None, target=user)
    end_web_session()
    db.session.commit()
    return redirect(url_for("web.login"))


@bp.get("/")
@login_required
def home() -> str:
    scope = current_scope()
    user = scope.user
    communities = communities_of(scope)
    context: dict[str, Any] = {"user": user, "communities": communities}
    if user.role in (UserRole.ADMIN, UserRole.STAFF):
        context["counts"] = _structure_counts(scope)
        context["devices"] = list(
            db.session.scalars(
                scope.query(Device).order_by(Device.community_id, Device.name).limit(200)
            )
        )
        context["lease_ends"] = _recent_lease_ends(scope)
    if user.role is UserRole.ADMIN:
        context["worker"] = health.leading_worker()
    if user.role is UserRole.OFFICER:
        context["open_alerts"] = dict(
            db.session.execute(
                select(Alert.community_id, func.count())
                .where(scope.visible(Alert), Alert.status != "resolved")
                .group_by(Alert.community_id)
            ).all()
        )
        context["plans"] = _officer_plans(scope, communities)
    if user.role is UserRole.RESIDENT and user.unit is not None:
        context["unit"] = user.unit
        context["building"] = db.session.get(Building, user.unit.building_id)
    return render_template(f"home_{user.role.value}.html", **context)


def _officer_plans(scope: Scope, communities: list[Community]) -> list[dict[str, Any]]:
    """The city view: one site plan per covered community, its open alerts' spots in red."""
    from server.web.siteplan import open_alert_plans  # it registers routes on bp

    alerts = db.session.scalars(
        scope.query(Alert)
        .where(Alert.status != AlertStatus.RESOLVED)
        .order_by(Alert.created_at.desc())
        .limit(500)
    )
    return open_alert_plans(communities, alerts)


def _recent_lease_ends(scope: Scope) -> list[dict[str, Any]]:
    """Leases the scheduler closed in the last week: what staff must follow up (keys, cards)."""
    since = utcnow() - timedelta(days=7)
    entries = db.session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.action == "lease.ended",
            AuditEntry.at >= since,
            AuditEntry.community_id.in_(select(Community.id).where(scope.visible(Community))),
        )
        .order_by(AuditEntry.at.desc())
        .limit(50)
    )
    rows = []
    for entry in entries:
        person = db.session.get(Person, entry.details.get("person_id"))
        rows.append(
            {
                "at": entry.at,
                "community_id": entry.community_id,
                "person": person,
                "erased": entry.details.get("templates_erased", 0),
                "revoked": entry.details.get("passes_revoked", 0),
            }
        )
    return rows


def _structure_counts(scope: Scope) -> dict[str, dict[str, int]]:
    """Per community: how many buildings, units, access points and devices."""
    counts: dict[str, dict[str, int]] = {}
    for label, model in (
        ("buildings", Building),
        ("units", Unit),
        ("access_points", AccessPoint),
        ("devices", Device),
    ):
        rows = db.session.execute(
            select(model.community_id, func.count())
            .where(scope.visible(model))
            .group_by(model.community_id)
        )
        for community_id, count in rows:
            counts.setdefault(community_id, {})[label] = count
    waiting = db.session.execute(
        select(RegistrationRequest.community_id, func.count())
        .where(
            scope.visible(RegistrationRequest),
            RegistrationRequest.status == RegistrationStatus.PENDING,
        )
        .group_by(RegistrationRequest.community_id)
    )
    for community_id, count in waiting:
        counts.setdefault(community_id, {})["pending_registrations"] = count
    return counts


@bp.get("/problems/<slug>")
def problem_type(slug: str) -> str:
    """Human-readable page behind each problem document's ``type``."""
    if slug not in PROBLEM_TYPES:
        abort(404)
    title, description = problem_type_page(slug)
    return render_template("problem_type.html", title=title, description=description)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    """Readiness: 200 ``ok`` when the database, the worker and the broker all hold, else
    503 ``degraded`` with what is wrong (``server.core.health``)."""
    report = health.check()
    return report.to_json(), 200 if report.ok else 503


@bp.get("/livez")
def livez() -> dict[str, str]:
    """Liveness for process managers: this process answers (nothing else is checked)."""
    return {"status": "ok"}


@bp.post("/language")
def choose_language() -> Response:
    """The language switch in every page's header: kept on the account when signed in, in a
    cookie otherwise (guests, the sign-in page); then back to the page it was used on."""
    locale = i18n.normalise(request.form.get("locale"))
    if locale is None:
        abort(400)
    if current_user.is_authenticated:
        current_user.locale = locale
        db.session.commit()
    response = redirect(_safe_next(request.form.get("next")))
    response.set_cookie(
        i18n.LOCALE_COOKIE,
        locale,
        max_age=int(timedelta(days=365).total_seconds()),
        samesite="Lax",
        httponly=True,
        secure=request.is_secure,
    )
    return response


def init_app(app: Flask) -> None:
    from server.web import (  # noqa: F401 - they register routes on bp
        alerting,
        antipassback,
        cars,
        couriers,
        device_admin,
        devices,
        dispatch,
        doormodes,
        evidence,
        guest,
        holidays,
        intercom,
        live,
        needtoknow,
        officer,
        onboarding,
        parking,
        people,
        portal,
        portal_notifications,
        privacy,
        site,
        siteplan,
    )

    app.register_blueprint(bp)
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(word, "word")
    app.add_template_filter(audit_action, "audit_action")
    app.context_processor(lambda: {"now": utcnow()})
