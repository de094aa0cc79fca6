"""The watchlist: wanted and missing persons that officers enrol, checked at every face capture.

Only officers (and admins) of a community see its watchlist (``server.core.scope``). An entry's
face passes the same quality checks as a resident's enrolment. Each process keeps a small
matrix of every community's entries in memory and reloads it when the entries change:
the version is the entries' count and latest ``updated_at``, read on each capture (one
indexed query), so an enrolment or a removal in one web worker reaches the others at
their next capture.

A hit (distance within the community's ``face_tolerance``) raises a high ``watchlist_hit``
alert at once, one per entry while it is open, updated with each new event. Per entry the
door still opens (the ordinary decision stands, and the terminal's answer says nothing of
the hit) or denies with reason ``watchlist``. See ``docs/strangers.md``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from flask import Flask
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from gatekeeper import faces
from gatekeeper.vocabulary import AlertType, Decision, Severity
from server.alerts.service import raise_alert
from server.alerts.summaries import N_, Phrase, summary
from server.core import audit, crypto
from server.core.appstate import per_app
from server.core.errors import Invalid
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessEvent, AccessPoint, Community, WatchlistEntry
from server.people.faces import checked_photo

CATEGORIES = ("wanted", "missing")
# What a denial at the door is recorded as (the decision's reason is ``watchlist``).
DENY_RULE = "watchlist.deny"


@dataclass(frozen=True)
class WatchlistHit:
    """A face at a door within the tolerance of a watchlist entry (the closest one)."""

    entry_id: str
    name: str
    category: str
    door_opens: bool
    distance: float


@dataclass(frozen=True)
class _Entries:
    version: tuple[int, datetime | None]
    ids: tuple[str, ...]
    names: tuple[str, ...]
    categories: tuple[str, ...]
    door_opens: tuple[bool, ...]
    matrix: np.ndarray  # N x 128 float32


class WatchlistCache:
    """This process's watchlists, one small matrix per community."""

    def __init__(self) -> None:
        self._lists: dict[str, _Entries] = {}
        self._lock = threading.Lock()

    def check(
        self,
        community_id: str,
        template: np.ndarray,
        tolerance: float,
        version: tuple[int, datetime | None] | None = None,
    ) -> WatchlistHit | None:
        """The closest entry within ``tolerance`` of ``template``, if any. ``version``: the
        list's entries and latest change, when the caller read them already."""
        entries = self._current(community_id, version)
        if not entries.ids:
            return None
        vector = np.asarray(template, dtype=np.float32).reshape(faces.TEMPLATE_SIZE)
        distances = np.linalg.norm(entries.matrix - vector, axis=1)
        best = int(np.argmin(distances))
        distance = float(distances[best])
        if distance > tolerance:
            return None
        return WatchlistHit(
            entries.ids[best],
            entries.names[best],
            entries.categories[best],
            entries.door_opens[best],
            distance,
        )

    def _current(self, community_id: str, version: tuple[int, datetime | None] | None) -> _Entries:
        if version is None:
            count, latest = db.session.execute(
                select(func.count(), func.max(WatchlistEntry.updated_at)).where(
                    WatchlistEntry.community_id == community_id
                )
            ).one()
            version = (int(count), latest)
        entries = self._lists.get(community_id)
        if entries is not None and entries.version == version:
            return entries
        with self._lock:  # one reload at a time; a reload is a few rows
            entries = self._lists.get(community_id)
            if entries is None or entries.version != version:
                entries = self._lists[community_id] = _load(community_id, version)
        return entries


def _load(community_id: str, version: tuple[int, datetime | None]) -> _Entries:
    rows = db.session.execute(
        select(
            WatchlistEntry.id,
            WatchlistEntry.name,
            WatchlistEntry.category,
            WatchlistEntry.door_opens,
            WatchlistEntry.template_encrypted,
        )
        .where(WatchlistEntry.community_id == community_id, WatchlistEntry.active.is_(True))
        .order_by(WatchlistEntry.id)
    ).all()
    matrix = np.zeros((len(rows), faces.TEMPLATE_SIZE), dtype=np.float32)
    for row_number, row in enumerate(rows):
        matrix[row_number] = faces.template_from_bytes(crypto.decrypt(row.template_encrypted))
    return _Entries(
        version,
        tuple(r.id for r in rows),
        tuple(r.name for r in rows),
        tuple(r.category for r in rows),
        tuple(bool(r.door_opens) for r in rows),
        matrix,
    )


def watchlists(app: Flask | None = None) -> WatchlistCache:
    return per_app("watchlists", WatchlistCache, app)


# Officers' actions ---------------------------------------------------------------------------


def _community(scope: Scope, community_id: str) -> Community:
    community = scope.get(Community, community_id)
    scope.require_sees(WatchlistEntry)
    scope.require_write(WatchlistEntry)
    return community


def enrol(
    scope: Scope,
    community_id: str,
    image: bytes,
    *,
    name: str,
    category: str,
    note: str | None = None,
    door_opens: bool = True,
) -> WatchlistEntry:
    """Check the photo as an enrolment is checked and add the entry; a bad photo stores nothing."""
    community = _community(scope, community_id)
    result = checked_photo(image)
    template = crypto.encrypt(faces.template_to_bytes(result.template))
    return add_entry(
        scope,
        community,
        template,
        name=name,
        category=category,
        note=note,
        door_opens=door_opens,
    )


def add_entry(
    scope: Scope,
    community: Community,
    template_encrypted: bytes,
    *,
    name: str,
    category: str,
    note: str | None,
    door_opens: bool,
    source: dict[str, Any] | None = None,
) -> WatchlistEntry:
    """Store an entry whose template is already checked and encrypted; audited."""
    if category not in CATEGORIES:
        raise Invalid(
            _l("category must be one of %(choices)s.", choices=", ".join(CATEGORIES)),
            errors={"category": [str(_l("Unknown category."))]},
        )
    entry = WatchlistEntry(
        community_id=community.id,
        name=name,
        category=category,
        note=note,
        template_encrypted=template_encrypted,
        door_opens=door_opens,
        created_by_user_id=scope.user.id,
    )
    db.session.add(entry)
    db.session.flush()
    # Never the name: the audit log is read more widely than the watchlist.
    audit.record(
        scope.user,
        "watchlist.enrol",
        community_id=community.id,
        target=entry,
        details={"category": category, "door_opens": door_opens, **(source or {})},
    )
    return entry


def entries(scope: Scope, community_id: str) -> list[WatchlistEntry]:
    community = scope.get(Community, community_id)
    scope.require_sees(WatchlistEntry)
    return list(
        db.session.scalars(
            scope.query(WatchlistEntry)
            .where(WatchlistEntry.community_id == community.id)
            .order_by(WatchlistEntry.created_at.desc(), WatchlistEntry.id)
        )
    )


def remove(scope: Scope, entry_id: str) -> None:
    """Delete the entry and its template (the alerts it raised stay)."""
    entry = scope.writable(WatchlistEntry, entry_id)
    audit.record(
        scope.user,
        "watchlist.remove",
        community_id=entry.community_id,
        target=entry,
        details={"category": entry.category},
    )
    db.session.delete(entry)


# At the door ---------------------------------------------------------------------------------


def check(
    community_id: str,
    template: np.ndarray,
    tolerance: float,
    version: tuple[int, datetime | None] | None = None,
) -> WatchlistHit | None:
    """The watchlist entry this face at a door matches, if any (``version``: as read with the
    door, ``server.access.decision.FaceVersions``)."""
    return watchlists().check(community_id, template, tolerance, version)


def alert_hit(event: AccessEvent, hit: WatchlistHit, *, live: bool) -> None:
    """Raise (or bring up to date) the entry's ``watchlist_hit`` alert with this event."""
    point = db.session.get(AccessPoint, event.access_point_id) if event.access_point_id else None
    where = point.name if point else "a deleted access point"
    text = (
        N_("Wanted person %(name)s at %(place)s (distance %(distance)s)")
        if hit.category == "wanted"
        else N_("Missing person %(name)s at %(place)s (distance %(distance)s)")
    )
    evidence: dict[str, Any] = {
        "watchlist_entry_id": hit.entry_id,
        "category": hit.category,
        "event_ids": [event.id],
        "where": [where],
        "distance": round(hit.distance, 4),  # the latest event's
        "door_opened": event.decision is Decision.GRANT,
        "live": live,
        "last_seen": event.occurred_at.isoformat(),
    }
    raise_alert(
        community_id=event.community_id,
        type=AlertType.WATCHLIST_HIT,
        severity=Severity.HIGH,
        summary=summary(
            text,
            name=hit.name,
            place=point.name if point else Phrase(N_("a deleted access point")),
            distance=f"{hit.distance:.2f}",
        ),
        access_point_id=event.access_point_id,
        device_id=event.device_id,
        evidence=evidence,
        dedup_key=f"watchlist:{hit.entry_id}",
    )
