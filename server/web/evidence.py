"""The alert page's evidence actions: the signed bundle, and an officer's hold on the
stranger an alert is about (``server.alerts.evidence``, docs/alerts.md "Evidence")."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers import Response

from server.alerts import evidence
from server.core.errors import NotFound
from server.extensions import db
from server.models import Alert, StrangerCluster, UserRole
from server.web import bp
from server.web.helpers import flash_ok, scope_for


def _scope() -> Any:
    return scope_for(UserRole.OFFICER, UserRole.ADMIN)


@bp.app_template_global("evidence_cluster")
def evidence_cluster(alert: Alert) -> StrangerCluster | None:
    """The stranger cluster an alert is about (a ``stranger`` alert's ``cluster_id``)."""
    cluster_id = (alert.evidence or {}).get("cluster_id")
    if not cluster_id:
        return None
    cluster = db.session.get(StrangerCluster, str(cluster_id))
    return cluster if cluster and cluster.community_id == alert.community_id else None


@bp.post("/alerts/<alert_id>/evidence-hold")
@login_required
def alert_evidence_hold(alert_id: str) -> Response:
    """Hold (``action=hold``) or release (``action=release``) the alert's stranger."""
    scope = _scope()
    alert = scope.get(Alert, alert_id)
    cluster = evidence_cluster(alert)
    action = request.form.get("action", "")
    if cluster is None or action not in ("hold", "release"):
        raise NotFound(_("This alert has no stranger whose evidence can be held."))
    if action == "hold":
        evidence.hold_cluster(scope, cluster.id)
        message = _("This stranger's sightings are kept until you release the hold.")
    else:
        evidence.release_cluster(scope, cluster.id)
        message = _("Hold released: the sightings follow the community's retention again.")
    db.session.commit()
    flash_ok(message)
    return redirect(url_for("web.alert_page", alert_id=alert.id), 303)
