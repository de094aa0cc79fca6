"""Evidence that stays: the access events (and their face crops) retention must keep.

An alert names its events in ``evidence["event_ids"]``. While the alert is open or
acknowledged, and for the community's ``evidence_hold_days`` after it was resolved (its
``updated_at``: a resolved alert does not change again), those events are held. An officer
can also put a hold on a stranger cluster: the events of all its sightings are held until
the hold is released. ``held_event_ids`` is the one set the retention jobs leave out
(``server.access.retention``, ``server.access.snapshots``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from gatekeeper.vocabulary import AlertStatus
from server.community import settings as community_settings
from server.core import audit
from server.core.scope import Scope
from server.extensions import db
from server.models import Alert, Community, StrangerCluster, StrangerSighting, utcnow


def hold_days(stored: dict[str, Any] | None) -> int:
    """How many days a resolved alert still holds its evidence in this community."""
    return community_settings.effective(stored).evidence_hold_days


def held_event_ids(now: datetime | None = None) -> set[str]:
    """The ids of the access events held now, across every community."""
    now = now or utcnow()
    days = {
        community_id: hold_days(stored)
        for community_id, stored in db.session.execute(select(Community.id, Community.settings))
    }
    longest = max(days.values(), default=community_settings.DEFAULTS.evidence_hold_days)
    held: set[str] = set()
    rows = db.session.execute(
        select(Alert.community_id, Alert.status, Alert.updated_at, Alert.evidence).where(
            or_(
                Alert.status != AlertStatus.RESOLVED,
                Alert.updated_at >= now - timedelta(days=longest),
            )
        )
    )
    default = community_settings.DEFAULTS.evidence_hold_days
    for community_id, status, updated_at, evidence in rows:
        if status == AlertStatus.RESOLVED and updated_at < now - timedelta(
            days=days.get(community_id, default)
        ):
            continue
        held.update(str(e) for e in (evidence or {}).get("event_ids", []) or [])
    held.update(
        db.session.scalars(
            select(StrangerSighting.event_id)
            .join(StrangerCluster, StrangerCluster.id == StrangerSighting.cluster_id)
            .where(StrangerCluster.held_at.is_not(None))
        )
    )
    return held


def hold_cluster(scope: Scope, cluster_id: str) -> StrangerCluster:
    """Keep the events and crops of this stranger's sightings until the hold is released."""
    scope.require_sees(StrangerCluster)
    cluster = scope.writable(StrangerCluster, cluster_id)
    if cluster.held_at is None:
        cluster.held_at = utcnow()
        audit.record(scope.user, "stranger.hold", community_id=cluster.community_id, target=cluster)
    return cluster


def release_cluster(scope: Scope, cluster_id: str) -> StrangerCluster:
    """Let retention take this stranger's sightings again (after their own retention)."""
    scope.require_sees(StrangerCluster)
    cluster = scope.writable(StrangerCluster, cluster_id)
    if cluster.held_at is not None:
        cluster.held_at = None
        audit.record(
            scope.user, "stranger.release", community_id=cluster.community_id, target=cluster
        )
    return cluster
