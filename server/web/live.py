"""The pages' live updates: ``GET /live?feeds=commands,devices,cars&community=<cid>``.

One Server-Sent Events stream per page (``server.core.live``): the device console follows
``commands`` and ``devices``, the cars page ``cars``, a resident's doors page ``commands``
(only their own). Staff and admins of the community follow its commands, devices and cars; a
resident follows only the commands they issued themselves; officers and other communities'
staff find no such stream (404), unknown feeds answer 422, and a signed-out browser is sent to
sign in. 503 with ``Retry-After`` when this process serves ``PAGE_STREAMS_PER_PROCESS``
pages already (the page says to reload for the latest). Pages work without it: a reload shows
the same.

The stream is on the page's own origin, or on the stream process's (``STREAM_PORT``,
``server.core.live.stream_origin``): ``stream_url`` and the templates' ``stream_origin()``
(the officer's console) say which.
"""

from __future__ import annotations

from flask import current_app, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

# The feeds register themselves on import.
from server.access import feeds as access_feeds  # noqa: F401
from server.access import parking_feed  # noqa: F401
from server.core import live
from server.core.scope import Scope
from server.devices import feeds as device_feeds  # noqa: F401
from server.models import utcnow
from server.web import bp
from server.web.helpers import current_scope


@bp.get("/live")
@login_required
def live_stream() -> Response:
    scope = current_scope()
    names = [name for name in request.args.get("feeds", "").split(",") if name]
    subscriber = live.page_subscriber(scope, names, request.args.get("community", ""))
    return live.respond(
        live.broadcaster(),
        subscriber,
        current_app.config["SETTINGS"].page_streams_per_process,
        lambda since: live.resume(subscriber, since),
        heartbeat_s=live.HEARTBEAT_S,
        max_s=live.STREAM_MAX_S,
    )


def stream_url(scope: Scope, community_id: str, *feeds: str) -> str | None:
    """The page's stream of ``feeds`` in this community, resuming from now (what changes
    between the page and the stream's start is not lost); None when the caller follows none."""
    if not live.offers(scope, *feeds):
        return None
    path = url_for(
        "web.live_stream",
        feeds=",".join(feeds),
        community=community_id,
        last_event_id=live.event_id_at(utcnow()),
    )
    return (live.stream_origin() or "") + path


@bp.app_template_global("stream_origin")
def stream_origin() -> str:
    """Where the page opens its streams: the stream process's origin, or "" (its own)."""
    return live.stream_origin() or ""
