"""Strangers at the doors: unknown faces clustered per community, one alert per cluster.

An unknown face (no resident within the tolerance, liveness passed) joins the cluster
whose centroid is closer than the community's ``stranger_tolerance``, or starts a new
one; the centroid is the running mean of its faces, encrypted like every template. Each
face is a ``StrangerSighting``. A cluster that is being watched raises one ``stranger``
alert (dedup key ``stranger:{cluster_id}``) when its sightings cross the community's
thresholds (``gatekeeper.strangers``), and every later sighting brings that alert up to
date while it is open. Officers mark a cluster ``known`` (no more alerts) or promote it
to the watchlist. ``similar_events`` answers "where else was this face seen".

Each process keeps the decrypted centroids of every community in memory and refreshes
only the clusters whose ``updated_at`` changed since (one small query per unknown face).
See ``docs/strangers.md``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from flask import Flask
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select

from gatekeeper import faces, strangers
from gatekeeper.vocabulary import AlertStatus, AlertType, CredentialType, Severity
from server.alerts.service import raise_alert
from server.alerts.summaries import N_, Summary, summary
from server.alerts.watchlist import add_entry
from server.community import settings as community_settings
from server.community.settings import CommunitySettings
from server.core import audit, crypto
from server.core.appstate import per_app
from server.core.errors import Conflict
from server.core.links import snapshot_url
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    Community,
    StrangerCluster,
    StrangerSighting,
    WatchlistEntry,
)

WATCHING, KNOWN, WATCHLISTED = "watching", "known", "watchlisted"
# "Where else was this face seen" compares with at most this many of the community's newest
# unknown faces (decrypting one takes about 10 microseconds).
SIMILAR_SCAN_LIMIT = 20_000
_FETCH_CHUNK = 500


# Centroids in memory -------------------------------------------------------------------------


@dataclass
class _Centroids:
    stamps: dict[str, datetime] = field(default_factory=dict)  # cluster id -> updated_at
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    ids: tuple[str, ...] = ()
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, faces.TEMPLATE_SIZE)))
    lock: threading.Lock = field(default_factory=threading.Lock)


class CentroidCache:
    """This process's decrypted cluster centroids, one matrix per community."""

    def __init__(self) -> None:
        self._communities: dict[str, _Centroids] = {}
        self._lock = threading.Lock()

    def matrix(self, community_id: str) -> tuple[tuple[str, ...], np.ndarray]:
        """The community's cluster ids and their centroids (N x 128), as the database has them."""
        with self._lock:
            entry = self._communities.setdefault(community_id, _Centroids())
        stamps = dict(
            db.session.execute(
                select(StrangerCluster.id, StrangerCluster.updated_at).where(
                    StrangerCluster.community_id == community_id
                )
            ).all()
        )
        with entry.lock:
            if stamps != entry.stamps:
                _refresh(entry, stamps)
            return entry.ids, entry.matrix


def _refresh(entry: _Centroids, stamps: dict[str, datetime]) -> None:
    changed = [cid for cid, stamp in stamps.items() if entry.stamps.get(cid) != stamp]
    for start in range(0, len(changed), _FETCH_CHUNK):
        rows = db.session.execute(
            select(StrangerCluster.id, StrangerCluster.centroid_encrypted).where(
                StrangerCluster.id.in_(changed[start : start + _FETCH_CHUNK])
            )
        )
        for cid, blob in rows:
            entry.vectors[cid] = faces.template_from_bytes(crypto.decrypt(blob))
    for gone in set(entry.vectors) - set(stamps):
        del entry.vectors[gone]
    entry.stamps = stamps
    entry.ids = tuple(sorted(entry.vectors))
    entry.matrix = (
        np.vstack([entry.vectors[cid] for cid in entry.ids])
        if entry.ids
        else np.zeros((0, faces.TEMPLATE_SIZE), dtype=np.float32)
    )


def centroids(app: Flask | None = None) -> CentroidCache:
    return per_app("stranger_centroids", CentroidCache, app)


# Sightings and alerts ------------------------------------------------------------------------


def record_sighting(
    event: AccessEvent, template: np.ndarray, community: Community, settings: CommunitySettings
) -> StrangerCluster:
    """Put the unknown face of ``event`` in its cluster and alert when the rules say so.

    The face crop, when kept, must already be stored on the event (it is the evidence).
    The caller commits.
    """
    ids, matrix = centroids().matrix(community.id)
    assignment = strangers.assign(matrix, template, settings.stranger_tolerance)
    if assignment.index is None:
        cluster = StrangerCluster(
            community_id=community.id,
            centroid_encrypted=_encrypt(template),
            sightings=1,
            first_seen_at=event.occurred_at,
            last_seen_at=event.occurred_at,
            status=WATCHING,
        )
        db.session.add(cluster)
        db.session.flush()
    else:
        # Locked so that two faces of one stranger at once do not lose a centroid update.
        cluster = db.session.scalar(
            select(StrangerCluster)
            .where(StrangerCluster.id == ids[assignment.index])
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        old = faces.template_from_bytes(crypto.decrypt(cluster.centroid_encrypted))
        cluster.centroid_encrypted = _encrypt(
            strangers.running_mean(old, cluster.sightings, template)
        )
        cluster.sightings += 1
        cluster.first_seen_at = min(cluster.first_seen_at, event.occurred_at)
        cluster.last_seen_at = max(cluster.last_seen_at, event.occurred_at)
    db.session.add(
        StrangerSighting(
            community_id=community.id,
            cluster_id=cluster.id,
            event_id=event.id,
            access_point_id=event.access_point_id,
            seen_at=event.occurred_at,
        )
    )
    db.session.flush()
    if cluster.status == WATCHING:
        _alert(cluster, event, community, settings)
    return cluster


def thresholds(settings: CommunitySettings, time_zone: str) -> strangers.StrangerThresholds:
    return strangers.StrangerThresholds(
        sightings=settings.stranger_sightings,
        window=timedelta(hours=settings.stranger_window_hours),
        access_points=settings.stranger_access_points,
        night_start=time.fromisoformat(settings.night_start),
        night_end=time.fromisoformat(settings.night_end),
        time_zone=time_zone,
    )


def _alert(
    cluster: StrangerCluster, event: AccessEvent, community: Community, settings: CommunitySettings
) -> None:
    """Raise the cluster's alert when the rules say so; an open one follows every sighting."""
    now = event.occurred_at
    rules = thresholds(settings, community.timezone)
    open_alert = _open_alert(cluster)
    # An open alert counts from its own first sighting; otherwise the rules' window.
    since = (
        datetime.fromisoformat(open_alert.evidence["first_seen"])
        if open_alert is not None and "first_seen" in (open_alert.evidence or {})
        else now - rules.window
    )
    rows = db.session.execute(
        _sightings()
        .where(
            StrangerSighting.cluster_id == cluster.id,
            StrangerSighting.seen_at >= since,
            StrangerSighting.seen_at <= now,
        )
        .order_by(StrangerSighting.seen_at, StrangerSighting.id)
    ).all()
    sightings = [strangers.Sighting(r.seen_at, r.access_point_id) for r in rows]
    verdict = strangers.judge(sightings, rules, now)
    if open_alert is None:
        if not verdict.alert:
            return
        in_window = now - rules.window
        rows = [r for r in rows if r.seen_at > in_window]
        sightings = list(verdict.in_window)
    where: list[str] = []
    for row in rows:
        name = row.name or "a deleted access point"
        if name not in where:
            where.append(name)
    alert = raise_alert(
        community_id=community.id,
        type=AlertType.STRANGER,
        severity=Severity.MEDIUM,
        summary=_summary(sightings, community.timezone),
        access_point_id=event.access_point_id,
        device_id=event.device_id,
        evidence={
            "cluster_id": cluster.id,
            "sightings": len(rows),
            "event_ids": [r.event_id for r in rows],
            "first_seen": rows[0].seen_at.isoformat(),
            "last_seen": rows[-1].seen_at.isoformat(),
            "where": where,
            "triggers": [t.value for t in verdict.triggers],
        },
        dedup_key=f"stranger:{cluster.id}",
    )
    cluster.alert_id = alert.id


# ``gatekeeper.strangers.summary``'s sentence, by whether it says "once" and "1 door".
_SUMMARIES = {
    (True, True): N_("Unknown person seen once at 1 door since %(since)s"),
    (True, False): N_("Unknown person seen once at %(doors)s doors since %(since)s"),
    (False, True): N_("Unknown person seen %(count)s times at 1 door since %(since)s"),
    (False, False): N_("Unknown person seen %(count)s times at %(doors)s doors since %(since)s"),
}


def _summary(sightings: list[strangers.Sighting], zone: str) -> Summary:
    """``Unknown person seen 3 times at 2 doors since 21:40`` (``gatekeeper.strangers``'s
    wording), to be shown in the reader's language."""
    info = ZoneInfo(zone)
    ordered = sorted(sightings, key=lambda s: s.seen_at)
    first, last = ordered[0].seen_at.astimezone(info), ordered[-1].seen_at.astimezone(info)
    since = f"{first:%H:%M}" if first.date() == last.date() else f"{first:%Y-%m-%d %H:%M}"
    count = len(ordered)
    doors = len({s.access_point_id for s in ordered if s.access_point_id is not None})
    return summary(_SUMMARIES[count == 1, doors == 1], count=count, doors=doors, since=since)


def _sightings() -> Select[Any]:
    """Sightings with their event's snapshot path and their access point's name.

    The name is None once the point is deleted (an outer join): the sighting still counts.
    """
    return (
        select(
            StrangerSighting.cluster_id,
            StrangerSighting.event_id,
            StrangerSighting.seen_at,
            StrangerSighting.access_point_id,
            AccessPoint.name,
            AccessEvent.snapshot_path,
        )
        .join(AccessEvent, AccessEvent.id == StrangerSighting.event_id)
        .outerjoin(AccessPoint, AccessPoint.id == StrangerSighting.access_point_id)
    )


def _open_alert(cluster: StrangerCluster) -> Alert | None:
    return db.session.scalar(
        select(Alert).where(
            Alert.community_id == cluster.community_id,
            Alert.dedup_key == f"stranger:{cluster.id}",
            Alert.status != AlertStatus.RESOLVED,
        )
    )


def _encrypt(template: np.ndarray) -> bytes:
    return crypto.encrypt(faces.template_to_bytes(template))


# Officers' actions ---------------------------------------------------------------------------


def clusters(scope: Scope, community_id: str, status: str | None = None) -> Any:
    """The community's clusters the caller may see, most recently seen first (a query)."""
    community = scope.get(Community, community_id)
    scope.require_sees(StrangerCluster)
    query = scope.query(StrangerCluster).where(StrangerCluster.community_id == community.id)
    if status is not None:
        query = query.where(StrangerCluster.status == status)
    return query.order_by(StrangerCluster.last_seen_at.desc(), StrangerCluster.id)


def sightings_of(cluster_ids: list[str], *, per_cluster: int | None = None) -> dict[str, list]:
    """Each cluster's sightings, newest first: event id, when, where, snapshot URL."""
    result: dict[str, list] = {cid: [] for cid in cluster_ids}
    if not cluster_ids:
        return result
    rows = db.session.execute(
        _sightings()
        .where(StrangerSighting.cluster_id.in_(cluster_ids))
        .order_by(StrangerSighting.seen_at.desc(), StrangerSighting.id.desc())
    )
    for row in rows:
        listed = result[row.cluster_id]
        if per_cluster is not None and len(listed) >= per_cluster:
            continue
        listed.append(
            {
                "event_id": row.event_id,
                "seen_at": row.seen_at,
                "access_point": (
                    {"id": row.access_point_id, "name": row.name} if row.access_point_id else None
                ),
                "snapshot_url": snapshot_url(row.event_id) if row.snapshot_path else None,
            }
        )
    return result


def _changeable(scope: Scope, cluster_id: str) -> StrangerCluster:
    scope.require_sees(StrangerCluster)
    cluster = scope.writable(StrangerCluster, cluster_id)
    if cluster.status == WATCHLISTED:
        raise Conflict(_l("This stranger is on the watchlist already."))
    return cluster


def mark_known(scope: Scope, cluster_id: str, note: str) -> StrangerCluster:
    """The officer knows who this is (a relative, a cleaner): no more alerts for it."""
    cluster = _changeable(scope, cluster_id)
    cluster.status, cluster.note, cluster.marked_by_user_id = KNOWN, note, scope.user.id
    audit.record(scope.user, "stranger.known", community_id=cluster.community_id, target=cluster)
    return cluster


def promote(
    scope: Scope,
    cluster_id: str,
    *,
    name: str,
    category: str,
    door_opens: bool = True,
    note: str | None = None,
) -> WatchlistEntry:
    """Put this stranger on the watchlist, with the cluster's centroid as the face."""
    cluster = _changeable(scope, cluster_id)
    scope.require_write(WatchlistEntry)
    entry = add_entry(
        scope,
        db.session.get(Community, cluster.community_id),
        cluster.centroid_encrypted,
        name=name,
        category=category,
        note=note,
        door_opens=door_opens,
        source={"stranger_cluster_id": cluster.id},
    )
    cluster.status, cluster.marked_by_user_id = WATCHLISTED, scope.user.id
    if note:
        cluster.note = note
    return entry


# Where else was this face seen -----------------------------------------------------------------


def similar_events(
    event: AccessEvent, *, limit: int = 50
) -> list[tuple[AccessEvent, float | None]]:
    """Other access events of the same face, with the distance where faces were compared.

    An event with an unknown face's template: the community's events whose templates are
    within ``stranger_tolerance`` (of its newest ``SIMILAR_SCAN_LIMIT`` unknown faces),
    nearest first. A known person's event: that person's other face events, newest first,
    without a distance. Anything else: nothing.
    """
    if event.template_encrypted is not None:
        return _same_face(event, limit)
    if event.person_id is None:
        return []
    rows = db.session.scalars(
        select(AccessEvent)
        .where(
            AccessEvent.community_id == event.community_id,
            AccessEvent.person_id == event.person_id,
            AccessEvent.credential_type == CredentialType.FACE,
            AccessEvent.id != event.id,
        )
        .order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc())
        .limit(limit)
    )
    return [(row, None) for row in rows]


def _same_face(event: AccessEvent, limit: int) -> list[tuple[AccessEvent, float | None]]:
    community = db.session.get(Community, event.community_id)
    tolerance = community_settings.effective(community.settings).stranger_tolerance
    probe = faces.template_from_bytes(crypto.decrypt(event.template_encrypted))
    rows = db.session.execute(
        select(AccessEvent.id, AccessEvent.template_encrypted)
        .where(
            AccessEvent.community_id == event.community_id,
            AccessEvent.template_encrypted.is_not(None),
            AccessEvent.id != event.id,
        )
        .order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc())
        .limit(SIMILAR_SCAN_LIMIT)
    ).all()
    if not rows:
        return []
    matrix = np.vstack([faces.template_from_bytes(crypto.decrypt(blob)) for _id, blob in rows])
    distances = np.linalg.norm(matrix - probe, axis=1)
    close = [i for i in np.argsort(distances, kind="stable") if distances[i] < tolerance][:limit]
    found = {
        row.id: row
        for row in db.session.scalars(
            select(AccessEvent).where(AccessEvent.id.in_([rows[i].id for i in close]))
        )
    }
    return [(found[rows[i].id], round(float(distances[i]), 4)) for i in close]
