"""What the officer sees: the live alert console, an alert's page (history, evidence, a map of
where), event search with its CSV export and "where else was this face seen", statistics.

Who sees what (404 for everyone else, as for any row out of scope):

- the console ``/officer`` and alert pages ``/alerts/<id>``: officers, for the communities
  they cover, and admins. The alert desk is the officers'; the property office has the
  device console and the car gates.
- event search ``/events/search`` and statistics ``/stats``: officers, staff and admins,
  for their communities. Officers read people only as a door terminal shows them (a masked
  name such as ``王*明`` next to the person's id); staff read full names, with links to the
  person pages.
- residents: none of these pages.

The console is live: ``static/officer.js`` listens to ``/api/v1/alerts/stream`` (server-sent
events, docs/protocol.md section 5) and acknowledges and resolves through the alerts API with
the page's session and its CSRF token. Times are shown and entered in the community's zone.
The script's words come from the page (``_script_texts``, a JSON block), and it shows a live
alert's summary in the reader's language by asking ``/alerts/<id>/summary`` for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_login import login_required
from sqlalchemy import select

from gatekeeper.plates import normalise_plate
from gatekeeper.vocabulary import (
    AccessPointKind,
    AlertStatus,
    AlertType,
    CredentialType,
    Decision,
    Reason,
    Severity,
    Zone,
)
from server.access import events
from server.access.events import MAX_PLATE, EventFilters
from server.alerts.summaries import display_summary
from server.api import API_PREFIX
from server.core.errors import NotFound
from server.core.i18n import ENGLISH, current_locale
from server.core.links import snapshot_url
from server.core.scope import Scope
from server.core.wording import reason_words, word
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    AlertHistory,
    Community,
    Device,
    UserRole,
    utcnow,
)
from server.web import bp
from server.web import siteplan as siteplan_pages
from server.web.drawings import SERIES_COLOURS, MapBlock, MapPoint, SiteMap, bar_chart, heat_map
from server.web.drawings import site_map as draw_site_map
from server.web.helpers import (
    access_points_of,
    buildings_of,
    communities_of,
    desk_scope,
    from_local_input,
    local_input,
    point_names,
    scope_for,
    user_names,
    zone_of,
)
from server.web.needtoknow import identity_panel

# Alerts the console loads with the page (the stream adds the rest).
CONSOLE_OPEN = 200
CONSOLE_RESOLVED = 50
RESOLVED_SHOWN_FOR = timedelta(hours=24)
SEARCH_PAGE = 50
STATS_DEFAULT_DAYS = 7
STATS_MAX_DAYS = 92
SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}
LOUD = frozenset({Severity.HIGH, Severity.CRITICAL})
# How long before and after an alert its "events around then" link searches.
AROUND = timedelta(hours=1)
# The steps of an alert's history (``AlertHistory.action``), in words.
STEP_WORDS = {
    "raised": _p("alert step", "raised"),
    "acknowledged": _p("alert step", "acknowledged"),
    "resolved": _p("alert step", "resolved"),
    "escalated": _p("alert step", "escalated"),
    "dispatched": _p("alert step", "dispatched"),
    "dispatch_accepted": _p("alert step", "dispatch acknowledged"),
    "dispatch_escalated": _p("alert step", "dispatch escalated to the station"),
}
# How far either side of now the console looks for a zone's abbreviations (summer and winter).
ZONE_LABEL_SPAN = timedelta(days=400)


def step_words(action: str) -> str:
    words = STEP_WORDS.get(action)
    return str(words) if words is not None else action.replace("_", " ")


def zone_labels(zone_name: str, now: datetime | None = None) -> dict[str, str]:
    """UTC offset in minutes -> the zone's abbreviation (``CST``) as ``local_time`` writes it,
    for every offset the zone uses within a year or so of now: the console's script labels
    live alerts' times with it, as the server labels the rest of the page."""
    zone = ZoneInfo(zone_name)
    now = now or utcnow()
    labels: dict[str, str] = {}
    span = range(-ZONE_LABEL_SPAN.days, ZONE_LABEL_SPAN.days + 1, 7)
    for days in sorted(span, key=abs):  # the name nearest to now, should a zone rename one
        local = (now + timedelta(days=days)).astimezone(zone)
        offset = local.utcoffset()
        if offset is not None:
            labels.setdefault(str(int(offset.total_seconds() // 60)), local.strftime("%Z"))
    return labels


def _officer_scope() -> Scope:
    """The alert desk: officers and admins."""
    return scope_for(UserRole.OFFICER, UserRole.ADMIN)


def _chosen_community(scope: Scope, cid: str | None) -> tuple[Community, list[Community]]:
    """The community asked for (404 when out of scope), else the caller's first one."""
    communities = communities_of(scope)
    if cid:
        return scope.get(Community, cid), communities
    if not communities:
        raise NotFound(_l("You cover no community yet; ask an administrator."))
    return communities[0], communities


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _snapshot(event: AccessEvent) -> str | None:
    if not event.snapshot_path:
        return None
    return snapshot_url(event.id)


# The console ---------------------------------------------------------------------------------


def _console_order(alert: Alert) -> tuple[bool, int, float]:
    """Unresolved first, then the most severe, then the newest."""
    return (
        alert.status is AlertStatus.RESOLVED,
        -SEVERITY_RANK[alert.severity],
        -alert.created_at.timestamp(),
    )


def _evidence_event_ids(evidence: Mapping[str, Any] | None) -> list[str]:
    """The access events an alert points at."""
    return [str(ident) for ident in (evidence or {}).get("event_ids") or []]


@dataclass(frozen=True)
class AlertCard:
    """One alert as the console shows it (``static/officer.js`` builds the same card)."""

    alert: Alert
    community: Community
    summary: str  # in the reader's language
    where: str | None
    snapshots: list[str]
    flashing: bool


def _cards(scope: Scope, alerts: list[Alert], communities: dict[str, Community]) -> list[AlertCard]:
    points = point_names(a.access_point_id for a in alerts)
    evidence = {a.id: _evidence_event_ids(a.evidence)[:3] for a in alerts}
    wanted = {ident for ids in evidence.values() for ident in ids}
    pictured = {
        event.id: _snapshot(event)
        for event in db.session.scalars(scope.query(AccessEvent).where(AccessEvent.id.in_(wanted)))
    }
    return [
        AlertCard(
            alert=alert,
            community=communities[alert.community_id],
            summary=display_summary(alert),
            where=points.get(alert.access_point_id or ""),
            snapshots=[pictured[i] for i in evidence[alert.id] if pictured.get(i)],
            flashing=alert.status is AlertStatus.OPEN and alert.severity in LOUD,
        )
        for alert in alerts
    ]


def _script_texts() -> dict[str, Any]:
    """Every word ``static/officer.js`` writes, in the reader's language (``{name}`` is
    filled in by the script)."""
    return {
        "types": {kind.value: word(kind) for kind in AlertType},
        "severities": {severity.value: word(severity) for severity in Severity},
        "statuses": {status.value: word(status) for status in AlertStatus},
        "steps": {action: step_words(action) for action in STEP_WORDS},
        "alarm": {
            Severity.CRITICAL.value: _("Critical alert: %(summary)s", summary="{summary}"),
            Severity.HIGH.value: _("High alert: %(summary)s", summary="{summary}"),
        },
        "alert": _("Alert"),
        "sound_on": _("Sound on"),
        "sound_off": _("Sound off"),
        "live": _("live"),
        "reconnecting": _("reconnecting…"),
        "offline": _("offline: retrying…"),
        "no_stream": _("reload for new alerts"),
        "evidence_picture": _("Evidence picture"),
        "no_picture": _("no picture"),
        "server_answered": _("The server answered %(status)s.", status="{status}"),
        "you": _("you"),
        "just_now": _("just now"),
    }


def _summary_url() -> str | None:
    """Where the script asks for a live alert's summary in the reader's language (English
    readers need not: the stream's summary is English)."""
    if current_locale() == ENGLISH:
        return None
    return url_for("web.alert_summary", alert_id="ALERT_ID")


@bp.get("/officer")
@login_required
def officer_console() -> str:
    scope = _officer_scope()
    communities = {c.id: c for c in communities_of(scope)}
    unresolved = db.session.scalars(
        scope.query(Alert)
        .where(Alert.status != AlertStatus.RESOLVED)
        .order_by(Alert.created_at.desc())
        .limit(CONSOLE_OPEN)
    )
    resolved = db.session.scalars(
        scope.query(Alert)
        .where(
            Alert.status == AlertStatus.RESOLVED,
            Alert.updated_at >= utcnow() - RESOLVED_SHOWN_FOR,
        )
        .order_by(Alert.updated_at.desc())
        .limit(CONSOLE_RESOLVED)
    )
    alerts = sorted([*unresolved, *resolved], key=_console_order)
    return render_template(
        "officer_console.html",
        plans=[
            plan
            for plan in siteplan_pages.open_alert_plans(communities.values(), alerts)
            if plan["open"]
        ],
        cards=_cards(scope, alerts, communities),
        communities=list(communities.values()),
        community_info=json.dumps(
            {
                c.id: {"name": c.name, "tz": c.timezone, "tz_labels": zone_labels(c.timezone)}
                for c in communities.values()
            },
            ensure_ascii=False,
        ),
        texts=_script_texts(),
        summary_url=_summary_url(),
        api=f"{API_PREFIX}/alerts",
    )


@bp.get("/alerts/<alert_id>/summary")
@login_required
def alert_summary(alert_id: str) -> ResponseReturnValue:
    """An alert's summary in the reader's language, for the console's live cards; ``source``
    is the stored English one (the stream's), so the script knows which it replaces."""
    alert = _officer_scope().get(Alert, alert_id)
    return jsonify(summary=display_summary(alert), source=alert.summary)


# One alert -----------------------------------------------------------------------------------


def _event_row(event: AccessEvent, points: dict[str, str], who: dict[str, str]) -> dict[str, Any]:
    return {
        "event": event,
        "door": points.get(event.access_point_id or ""),
        "granted": event.decision is Decision.GRANT,
        "words": reason_words(event.reason),
        "credential": word(event.credential_type),
        "who": who.get(event.id),
        "snapshot": _snapshot(event),
        "face": event.credential_type is CredentialType.FACE,
    }


def _event_rows(scope: Scope, rows: list[AccessEvent]) -> list[dict[str, Any]]:
    points = point_names(e.access_point_id for e in rows)
    who = events.who(scope, rows)
    return [_event_row(event, points, who) for event in rows]


def community_plan(
    scope: Scope, community: Community, highlighted: Iterable[str | None] = ()
) -> SiteMap:
    """The community's buildings and access points, grouped for the schematic map."""
    buildings = buildings_of(scope, community.id)
    points = access_points_of(scope, community.id)
    perimeter: list[MapPoint] = []
    by_building: dict[str, list[MapPoint]] = {b.id: [] for b in buildings}
    by_zone: dict[str, list[MapPoint]] = {}
    for point in points:
        mark = MapPoint(id=point.id, name=point.name, kind=point.kind)
        if point.building_id in by_building:
            by_building[point.building_id].append(mark)
        elif point.zone is Zone.PERIMETER or point.kind is not AccessPointKind.DOOR:
            perimeter.append(mark)
        else:
            by_zone.setdefault(point.zone, []).append(mark)
    blocks = [MapBlock(label=b.name, points=tuple(by_building[b.id])) for b in buildings]
    for zone, marks in sorted(by_zone.items()):
        label = _("Other doors") if zone is Zone.BUILDING else word(zone).capitalize()
        blocks.append(MapBlock(label=label, points=tuple(marks), dashed=True))
    return SiteMap(
        title=community.name,
        perimeter=tuple(perimeter),
        blocks=tuple(blocks),
        highlighted=frozenset(ident for ident in highlighted if ident),
    )


def _history(alert: Alert) -> list[dict[str, Any]]:
    steps = list(
        db.session.scalars(
            select(AlertHistory)
            .where(AlertHistory.alert_id == alert.id)
            .order_by(AlertHistory.at, AlertHistory.id)
        )
    )
    # Who acted on alerts: other officers' names are part of the alert's record.
    names = user_names(step.by_user_id for step in steps)
    return [
        {
            "step": step,
            "words": step_words(step.action),
            "who": names.get(step.by_user_id or "", _("the system")),
        }
        for step in steps
    ]


@bp.get("/alerts/<alert_id>")
@login_required
def alert_page(alert_id: str) -> str:
    scope = _officer_scope()
    alert = scope.get(Alert, alert_id)
    community = scope.get(Community, alert.community_id)
    zone = zone_of(community)
    ids = _evidence_event_ids(alert.evidence)
    evidence_events = list(
        db.session.scalars(
            scope.query(AccessEvent)
            .where(AccessEvent.id.in_(ids))
            .order_by(AccessEvent.occurred_at, AccessEvent.id)
        )
    )
    device = db.session.get(Device, alert.device_id) if alert.device_id else None
    marked = [
        alert.access_point_id,
        device.access_point_id if device else None,
        *(event.access_point_id for event in evidence_events),
    ]
    point = db.session.get(AccessPoint, alert.access_point_id) if alert.access_point_id else None
    times = [alert.created_at, alert.updated_at, *(e.occurred_at for e in evidence_events)]
    around = {
        "community_id": community.id,
        "since": local_input(min(times) - AROUND, zone),
        "until": local_input(max(times) + AROUND, zone),
    }
    return render_template(
        "officer_alert.html",
        alert=alert,
        summary=display_summary(alert),
        texts=_script_texts(),
        community=community,
        point=point,
        device=device,
        history=_history(alert),
        rows=_event_rows(scope, evidence_events),
        missing=len(ids) - len(evidence_events),
        site_map=draw_site_map(community_plan(scope, community, marked)),
        marked_on_map=any(marked),
        # The plan where the alert has a place of its own; else the schematic marks the
        # doors of its evidence.
        site_plan=siteplan_pages.drawing(community, [alert])
        if alert.access_point_id or alert.device_id
        else None,
        around=around,
        at_door={**around, "access_point_id": point.id} if point else None,
        sees_names=events.sees_names(scope),
        flashing=alert.status is AlertStatus.OPEN and alert.severity in LOUD,
        api=f"{API_PREFIX}/alerts",
        identity=identity_panel(scope, alert),
    )


# Event search --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchForm:
    """The search form's values as typed (times local) and what they mean."""

    values: dict[str, str]
    filters: EventFilters
    errors: dict[str, list[str]]


_CHOICES = {
    "decision": {d.value for d in Decision},
    "reason": {r.value for r in Reason},
    "credential_type": {c.value for c in CredentialType},
}


def _read_search(
    args: Mapping[str, str], community: Community, points: list[AccessPoint]
) -> SearchForm:
    zone = zone_of(community)
    names = ("since", "until", "access_point_id", "person_id", "plate", "offline", *_CHOICES)
    values = {name: (args.get(name) or "").strip() for name in names}
    errors: dict[str, list[str]] = {}
    chosen: dict[str, Any] = {"community_id": community.id}
    for name in ("since", "until"):
        if not values[name]:
            continue
        try:
            chosen[name] = from_local_input(values[name], zone)
        except ValueError:
            errors[name] = [
                _(
                    "Enter a date and time like 2026-12-01 09:00 (%(zone)s).",
                    zone=community.timezone,
                )
            ]
    if "since" in chosen and "until" in chosen and chosen["until"] <= chosen["since"]:
        errors["until"] = [_("The end must be after the start.")]
    if values["access_point_id"]:
        if values["access_point_id"] in {p.id for p in points}:
            chosen["access_point_id"] = values["access_point_id"]
        else:
            errors["access_point_id"] = [_("Choose an access point of this community.")]
    if values["person_id"]:
        if len(values["person_id"]) <= 40:
            chosen["person_id"] = values["person_id"]
        else:
            errors["person_id"] = [_("A person id is at most 40 characters (per_...).")]
    if values["plate"]:
        if 1 <= len(normalise_plate(values["plate"])) <= MAX_PLATE:
            chosen["plate"] = values["plate"]
        else:
            errors["plate"] = [_("Enter a plate like 浙A12345.")]
    if values["offline"]:  # decided by the door offline (true) or by the server (false)
        if values["offline"] in ("true", "false"):
            chosen["offline"] = values["offline"] == "true"
        else:
            errors["offline"] = [_("Choose one of the list.")]
    for name, allowed in _CHOICES.items():
        if values[name]:
            if values[name] in allowed:
                chosen[name] = values[name]
            else:
                errors[name] = [_("Choose one of the list.")]
    return SearchForm(values=values, filters=EventFilters.from_query(chosen), errors=errors)


def _search_link(**args: str | None) -> str:
    return url_for("web.event_search", **{k: v for k, v in args.items() if v})


@bp.get("/events/search")
@login_required
def event_search() -> tuple[str, int]:
    scope = desk_scope()
    similar_to = (request.args.get("similar_to") or "").strip()
    origin = scope.get(AccessEvent, similar_to) if similar_to else None
    community, communities = _chosen_community(
        scope, origin.community_id if origin else request.args.get("community_id")
    )
    zone = zone_of(community)
    points = access_points_of(scope, community.id)
    form = _read_search(request.args, community, points)
    context: dict[str, Any] = {
        "community": community,
        "communities": communities,
        "points": points,
        "form": form,
        "decisions": list(Decision),
        "reasons": [(r.value, reason_words(r.value)) for r in Reason],
        "credentials": [(c.value, word(c)) for c in CredentialType],
        "sees_names": events.sees_names(scope),
        "origin": None,
        "distances": {},
        "older": None,
    }
    if origin is not None:
        matches = events.similar(scope, origin)
        context["origin"] = _event_rows(scope, [origin])[0]
        context["rows"] = _event_rows(scope, [row for row, _ in matches])
        if any(distance is not None for _row, distance in matches):
            context["distances"] = {row.id: distance for row, distance in matches}
        return render_template("officer_events.html", **context), 200
    rows: list[AccessEvent] = []
    if not form.errors:
        before_id = request.args.get("before")
        before = scope.get(AccessEvent, before_id) if before_id else None
        rows = list(
            db.session.scalars(
                events.search(scope, form.filters, before=before).limit(SEARCH_PAGE + 1)
            )
        )
    if len(rows) > SEARCH_PAGE:
        rows = rows[:SEARCH_PAGE]
        context["older"] = _search_link(
            community_id=community.id, before=rows[-1].id, **form.values
        )
    context["rows"] = _event_rows(scope, rows)
    context["csv"] = url_for("events.events_csv", **form.filters.as_query())
    context["zone"] = zone
    return render_template("officer_events.html", **context), 422 if form.errors else 200


# Statistics ----------------------------------------------------------------------------------


def _read_period(args: Mapping[str, str], today: date) -> tuple[date, date, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    first, last = today - timedelta(days=STATS_DEFAULT_DAYS - 1), today
    for name in ("from", "to"):
        text = (args.get(name) or "").strip()
        if not text:
            continue
        try:
            day = date.fromisoformat(text)
        except ValueError:
            errors[name] = [_("Enter a date like 2026-12-01.")]
            continue
        if name == "from":
            first = day
        else:
            last = day
    if last < first:
        errors["to"] = [_("The last day must not be before the first.")]
    elif (last - first).days >= STATS_MAX_DAYS:
        errors["to"] = [_("Choose at most %(days)s days.", days=STATS_MAX_DAYS)]
    if errors:  # show the default week rather than nothing
        first, last = today - timedelta(days=STATS_DEFAULT_DAYS - 1), today
    return first, last, errors


@bp.get("/stats")
@login_required
def stats() -> tuple[str, int]:
    scope = desk_scope()
    community, communities = _chosen_community(scope, request.args.get("community_id"))
    zone = zone_of(community)
    first, last, errors = _read_period(request.args, utcnow().astimezone(zone).date())
    since, until = _midnight(first, zone), _midnight(last + timedelta(days=1), zone)
    hourly = events.events_by_hour(scope, community.id, since, until, zone)
    points = access_points_of(scope, community.id)
    rows = [(p.name, [hourly[(p.id, hour)] for hour in range(24)]) for p in points]
    known = {p.id for p in points}
    others = [
        sum(n for (pid, h), n in hourly.items() if h == hour and pid not in known)
        for hour in range(24)
    ]
    if any(others):
        rows.append((_("Removed or no door"), others))
    days = events.local_days(first, last)
    alerts = events.alerts_by_day(scope, community.id, since, until, zone)
    present = {kind for _day, kind in alerts}
    series = [
        (kind.value, [alerts[(day, kind)] for day in days]) for kind in AlertType if kind in present
    ]
    colours = {
        kind.value: SERIES_COLOURS[n % len(SERIES_COLOURS)] for n, kind in enumerate(AlertType)
    }
    period = {"first": first.isoformat(), "last": last.isoformat(), "zone": community.timezone}
    return render_template(
        "officer_stats.html",
        community=community,
        communities=communities,
        first=first,
        last=last,
        errors=errors,
        values={"from": request.args.get("from", ""), "to": request.args.get("to", "")},
        heat=heat_map(_("Events by hour of day, %(first)s to %(last)s (%(zone)s)", **period), rows),
        bars=bar_chart(
            _("Alerts by type and day, %(first)s to %(last)s (%(zone)s)", **period),
            days,
            series,
            colours,
            labels={kind.value: word(kind) for kind in AlertType},
        ),
        point_totals=[(name, sum(counts)) for name, counts in rows],
        type_totals=[(word(AlertType(name)), sum(counts)) for name, counts in series],
        events_total=sum(hourly.values()),
        search=_search_link(
            community_id=community.id,
            since=local_input(since, zone),
            until=local_input(until, zone),
        ),
    ), 422 if errors else 200
