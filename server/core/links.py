"""Links to API resources that payloads and pages carry, built from the routes.

No room spells an API path: what an alert, a stranger's sighting or an officer's page
links to is made here with ``url_for`` in a request, and from the app's URL map outside
one (the worker's MQTT payloads and webhooks), as a path.
"""

from __future__ import annotations

from flask import current_app, has_request_context, url_for

# The API view that serves a picture kept with an access event (``server/api/events.py``).
SNAPSHOT_ENDPOINT = "events.event_snapshot"


def _path(endpoint: str, **values: str) -> str:
    if has_request_context():
        return url_for(endpoint, **values)
    return current_app.url_map.bind("").build(endpoint, values)


def snapshot_url(event_id: str) -> str:
    """Where staff and officers fetch the picture kept with an access event."""
    return _path(SNAPSHOT_ENDPOINT, event_id=event_id)
