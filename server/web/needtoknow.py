"""Need to know, on the pages: the identity behind a welfare alert or a watchlist hit on the
officer's alert page (behind a purpose stated in one click), and the audit viewer.

- ``POST /alerts/<id>/identity`` (form ``purpose``): officers covering the alert's community
  and admins. It opens the identity for this alert only, for ``REVEAL_FOR`` (a signed session
  entry); each rendering of the alert page that shows it records a read (``welfare_view``,
  the purpose, the alert). Before, the page shows the masked name only.
- ``/audit`` and ``/audit.csv``: changes and reads of personal data of the communities a
  supervisor oversees (staff marked ``supervisor``, and admins); everyone else 403. The
  export is itself audited (``audit.export``). Times in the community's zone, 24-hour clock.

docs/audit.md says what is recorded and who sees it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from sqlalchemy import select

from server.alerts import identity as identities
from server.core import audit, audit_log
from server.core.audit_log import AuditFilters
from server.core.errors import DomainError, Invalid
from server.core.scope import Scope
from server.extensions import db
from server.models import Alert, Community, Person, UserRole, utcnow
from server.web import bp
from server.web.helpers import communities_of, current_scope, scope_for, signed_in_user

# How long a stated purpose opens an alert's identity on this browser.
REVEAL_FOR = timedelta(minutes=15)
# The session entry: alert id -> [purpose, until (epoch seconds)]; the newest few only.
_REVEALS = "gk_reveals"
_REVEALS_KEPT = 10
AUDIT_PAGE = 50
PURPOSES = tuple(p.value for p in identities.Purpose)


# The identity behind an alert --------------------------------------------------------------


def _revealed(alert_id: str) -> tuple[str, datetime] | None:
    entry = (session.get(_REVEALS) or {}).get(alert_id)
    if not entry:
        return None
    purpose, until = entry[0], datetime.fromtimestamp(entry[1], tz=UTC)
    if until <= utcnow() or purpose not in PURPOSES:
        return None
    return purpose, until


def identity_panel(scope: Scope, alert: Alert) -> dict[str, Any] | None:
    """The alert page's identity section: None for an alert with nobody behind it; else the
    masked name and the purpose buttons, or, after a purpose was stated for this alert (and
    for ``REVEAL_FOR``), the identity, recorded as a read."""
    if not identities.reveals(alert):
        return None
    panel: dict[str, Any] = {
        "masked": identities.masked_name(alert),
        "purposes": PURPOSES,
        "identity": None,
    }
    opened = _revealed(alert.id)
    if opened is None:
        return panel
    purpose, until = opened
    try:
        identity = identities.identity_of(alert)
    except DomainError as error:
        panel["gone"] = str(error)
        return panel
    audit.record_read(
        scope.user,
        identity.subject_id,
        identities.WELFARE_VIEW,
        community_id=alert.community_id,
        purpose=purpose,
        alert_id=alert.id,
    )
    db.session.commit()
    photo = (
        f"data:{identity.photo_type};base64,{base64.b64encode(identity.photo).decode()}"
        if identity.photo
        else None
    )
    panel.update(identity=identity, photo=photo, purpose=purpose, until=until)
    return panel


@bp.post("/alerts/<alert_id>/identity")
@login_required
def open_identity(alert_id: str) -> ResponseReturnValue:
    """State why and open the identity behind this alert (this alert only, for a while)."""
    scope = scope_for(UserRole.OFFICER, UserRole.ADMIN)
    alert = scope.get(Alert, alert_id)
    purpose = request.form.get("purpose", "")
    if purpose not in PURPOSES:
        raise Invalid(
            _l("Choose why you open this identity."),
            errors={"purpose": [_("Choose one of the list.")]},
        )
    identities.identity_of(alert)  # 409 for an alert with nobody behind it, 404 when gone
    reveals = {
        key: value
        for key, value in (session.get(_REVEALS) or {}).items()
        if value[1] > utcnow().timestamp()
    }
    reveals[alert.id] = [purpose, (utcnow() + REVEAL_FOR).timestamp()]
    session[_REVEALS] = dict(sorted(reveals.items(), key=lambda kv: kv[1][1])[-_REVEALS_KEPT:])
    return redirect(url_for("web.alert_page", alert_id=alert.id, _anchor="identity"))


# The audit viewer ---------------------------------------------------------------------------


def _supervisor_scope() -> Scope:
    scope = current_scope()
    audit_log.require_supervisor(scope)
    return scope


def _midnight(text: str, zone: ZoneInfo) -> datetime:
    day = datetime.strptime(text, "%Y-%m-%d")
    return day.replace(tzinfo=zone)


def _read_filters(scope: Scope) -> tuple[AuditFilters, dict[str, str], list[Community], ZoneInfo]:
    """The viewer's filters from the query string (dates are the community's, both days
    included); 422 for values it cannot read."""
    args = request.args
    values = {
        name: (args.get(name) or "").strip()
        for name in ("community_id", "actor", "person_id", "kind", "since", "until")
    }
    communities = communities_of(scope)
    errors: dict[str, list[str]] = {}
    chosen = next((c for c in communities if c.id == values["community_id"]), None)
    if values["community_id"] and chosen is None:
        errors["community_id"] = [_("Choose a community of yours.")]
    if chosen is not None:
        ids: frozenset[str] | None = frozenset({chosen.id})
    elif scope.is_admin:
        ids = None
    else:
        ids = frozenset(c.id for c in communities)
    shown = chosen or (communities[0] if communities else None)
    zone = ZoneInfo(shown.timezone if shown else "Asia/Shanghai")
    if values["kind"] and values["kind"] not in audit_log.KINDS:
        errors["kind"] = [_("Choose one of the list.")]
    for name in ("actor", "person_id"):
        if len(values[name]) > 80:
            errors[name] = [_("At most %(num)s characters.", num=80)]
    bounds: dict[str, datetime] = {}
    for name in ("since", "until"):
        if values[name]:
            try:
                bounds[name] = _midnight(values[name], zone)
            except ValueError:
                errors[name] = [_("Enter a date like 2026-12-01.")]
    if "until" in bounds:
        bounds["until"] += timedelta(days=1)  # the whole last day
    if "since" in bounds and "until" in bounds and bounds["until"] <= bounds["since"]:
        errors["until"] = [_("The end must be after the start.")]
    if errors:
        raise Invalid(_l("The filter is not valid."), errors=errors)
    filters = AuditFilters(
        community_ids=ids,
        actor=values["actor"] or None,
        person_id=values["person_id"] or None,
        kind=values["kind"] or None,
        since=bounds.get("since"),
        until=bounds.get("until"),
    )
    return filters, values, communities, zone


@bp.get("/audit")
@login_required
def audit_viewer() -> str:
    scope = _supervisor_scope()
    filters, values, communities, zone = _read_filters(scope)
    total = audit_log.count(filters)
    pages = max(1, -(-total // AUDIT_PAGE))
    try:
        page = min(max(1, int(request.args.get("page", "1"))), pages)
    except ValueError:
        page = 1
    rows = audit_log.rows(filters, limit=AUDIT_PAGE, offset=(page - 1) * AUDIT_PAGE)
    return render_template(
        "audit.html",
        rows=rows,
        people=_names_of_subjects(scope, rows),
        values=values,
        communities=communities,
        names={c.id: c.name for c in communities},
        zones={c.id: c.timezone for c in communities},
        default_zone=zone.key,
        kinds=audit_log.KINDS,
        page=page,
        pages=pages,
        total=total,
        link_args={k: v for k, v in values.items() if v},
    )


def _person_of(row: audit_log.AuditRow) -> str | None:
    """The person a row is about (a read's subject, a change's ``Person:per_...``)."""
    subject = row.subject or ""
    if row.kind == "change":
        subject = subject.removeprefix("Person:")
    return subject if subject.startswith("per_") else None


def _names_of_subjects(scope: Scope, rows: list[audit_log.AuditRow]) -> dict[str, str]:
    """The names of the people the page's rows are about, in one query (those still stored
    in the supervisor's communities)."""
    ids = {pid for row in rows if (pid := _person_of(row))}
    if not ids:
        return {}
    found = db.session.execute(
        select(Person.id, Person.name).where(Person.id.in_(ids), scope.visible(Person))
    )
    return {pid: name for pid, name in found}


@bp.get("/audit.csv")
@login_required
def audit_export() -> Response:
    scope = _supervisor_scope()
    filters, values, _communities, _zone = _read_filters(scope)
    body = "".join(audit_log.csv_chunks(filters))
    # One entry per community exported, so each community's supervisors see it.
    for community_id in sorted(filters.community_ids) if filters.community_ids else [None]:
        audit.record(
            signed_in_user(),
            "audit.export",
            community_id=community_id,
            details={"filters": {k: v for k, v in values.items() if v}},
        )
    db.session.commit()
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(
        body.encode("utf-8"),
        mimetype="text/csv",
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
        },
    )
