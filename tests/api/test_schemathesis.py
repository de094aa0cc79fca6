"""The OpenAPI document describes what the server does: schemathesis over every operation.

Every operation runs as an admin, a member of staff and a resident (their bearer tokens),
each from a fresh ``world`` (one test item per operation and caller), with every check
schemathesis has: no 5xx, status codes, content types, headers and bodies as documented,
schema-valid requests accepted and invalid ones refused. Path parameters name the world's
rows, so success paths run too, not only 404s. Examples are bounded and derandomized.

One check is narrowed, never disabled: ``positive_data_acceptance`` lets a 422 through on
the operations of ``RULES_BEYOND_THE_SCHEMA`` only, each for the reason given there; any
other status it refuses is still a failure there.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from server import create_app
from server.alerts import stream
from tests import factories
from tests.support.api import WorldIds, assert_problem

ROLES = ("admin", "staff_a", "resident_a")
EXAMPLES = 8


def _document() -> dict[str, Any]:
    """The OpenAPI document, from an app of its own: it needs no database."""
    with tempfile.TemporaryDirectory(prefix="gk-openapi-") as path:
        app = create_app(
            {
                "GK_ENV": "test",
                "INSTANCE_DIR": f"{path}/instance",
                "DATABASE_URL": f"sqlite:///{path}/unused.db",
                "SECRET_KEY": "openapi-document-" + "x" * 32,
                "DATA_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
                "MQTT_URL": "mqtt://127.0.0.1:1",
                "LOG_LEVEL": "WARNING",
            }
        )
        return app.test_client().get("/api/v1/openapi.json").json


schema = schemathesis.openapi.from_dict(
    _document(),
    config=schemathesis.Config.from_dict(
        {
            "seed": 11,
            # The callers' tokens are sent by the test, not generated (a case that drops the
            # Authorization header would get it back and be no negative case at all).
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": True,
                "with-security-parameters": False,
                # Text holding NUL is refused with 422 at the boundary on every operation
                # (the document's description says so; ``server.core.bodies``).
                "allow-x00": False,
            },
            # The coverage phase sends every boundary of every field: minutes per operation.
            "phases": {"coverage": {"enabled": False}},
        }
    ),
)

# Path parameter -> the world's row it names.
PATH_IDS = {
    "cid": "a",
    "bid": "building_a",
    "uid": "unit_a",
    "apid": "door_a",
    "device_id": "device_a",
    "user_id": "resident_a",
}
# Body fields that refer to rows -> the world's row (a made-up id can only be refused).
BODY_IDS = {"building_id": "building_a", "unit_id": "unit_a", "access_point_id": "door_a"}

# Operations where a schema-valid request may be refused with 422, and why the document
# cannot say so. Each operation's description states the rule.
_REFERENCES = "names rows that must exist in the community (a made-up id is refused)"
RULES_BEYOND_THE_SCHEMA: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("POST", "/api/v1/passes"): (
        ("admin", "staff_a"),
        "staff and admins must name the pass's unit_id, residents get their own unit: the "
        "rule depends on the caller, and one document serves every caller",
    ),
    ("POST", "/api/v1/courier-codes"): (
        ROLES,
        "staff and admins must name the keypad door (access_point_id), a resident's code opens "
        "once, and minutes are bounded by the community's courier_code_max_minutes",
    ),
    ("POST", "/api/v1/communities/{cid}/units"): (ROLES, _REFERENCES),
    ("POST", "/api/v1/communities/{cid}/devices"): (
        ROLES,
        _REFERENCES + "; a door or barrier needs an access point of the same zone; plan_x "
        "comes with plan_y (both numbers or both null)",
    ),
    ("PATCH", "/api/v1/devices/{device_id}"): (
        ROLES,
        _REFERENCES + "; plan_x comes with plan_y (both numbers or both null)",
    ),
    ("POST", "/api/v1/communities/{cid}/patrol-routes"): (
        ROLES,
        _REFERENCES + " (RFID readers in the patrol_checkpoint zone); schedule windows' end "
        "must differ from their start, a comparison of two values",
    ),
    ("PATCH", "/api/v1/patrol-routes/{route_id}"): (ROLES, "as for POST patrol-routes"),
    ("POST", "/api/v1/communities/{cid}/holidays"): (
        ROLES,
        _REFERENCES + " (or all_points); the last day not before the first, hours only with "
        "effect hours and required there, closed never for all_points, no overlap with "
        "another holiday at one point: comparisons of several values",
    ),
    ("PATCH", "/api/v1/holidays/{holiday_id}"): (ROLES, "as for POST holidays"),
    ("POST", "/api/v1/communities/{cid}/anti-passback-pairs"): (
        ROLES,
        _REFERENCES + " (access points); one point named as entry and exit needs directional, "
        "and directional needs one point: comparisons of two values",
    ),
    ("PATCH", "/api/v1/anti-passback-pairs/{pair_id}"): (
        ROLES,
        "as for POST anti-passback-pairs, with the stored pair's points",
    ),
    ("POST", "/api/v1/communities/{cid}/access-points"): (
        ROLES,
        "schedule windows' end must differ from their start, and plan_x comes with plan_y "
        "(both numbers or both null): comparisons of two values",
    ),
    ("PATCH", "/api/v1/access-points/{apid}"): (ROLES, "as for POST access-points"),
    ("PATCH", "/api/v1/worker-permits/{wid}"): (ROLES, "as for POST access-points"),
    ("POST", "/api/v1/communities/{cid}/people"): (
        ROLES,
        "a role's required fields (unit_id for all but workers, lease for tenants, worker for "
        "workers) and references to units, access points and guardians",
    ),
    ("PATCH", "/api/v1/people/{pid}"): (ROLES, "guardian_ids name people of the community"),
    ("POST", "/api/v1/people/{pid}/leases"): (
        ROLES,
        "unit_id defaults to the tenant's unit: required only for a person without one",
    ),
    ("PATCH", "/api/v1/leases/{lid}"): (ROLES, "a renewal's ends_at must be later"),
    ("POST", "/api/v1/people/{pid}/vehicles"): (
        ROLES,
        "a plate must be one of GA 36-2018 (province, issuer, serial, new-energy forms), "
        "written in any of the forms a person types",
    ),
    ("POST", "/api/v1/communities/{cid}/blocked-plates"): (ROLES, "as for vehicles"),
    ("POST", "/api/v1/communities/{cid}/door-modes"): (
        ROLES,
        "the access points (each once) or building must be the community's and match the "
        "scope; the reason must not be blank; only a lockdown takes exempt_roles",
    ),
    ("POST", "/api/v1/users"): (
        ROLES,
        "a role's required fields (unit_id for residents, community_ids for staff and "
        "officers), which the caller may create, and references to units and communities",
    ),
    ("PATCH", "/api/v1/users/{user_id}"): (
        ROLES,
        "community_ids apply only to staff and officer accounts: the stored account's role",
    ),
    ("POST", "/api/v1/users/{user_id}/mqtt-credentials"): (
        ROLES,
        "only an officer account gets broker credentials: the stored account's role",
    ),
    ("POST", "/api/v1/communities/{cid}/watchlist"): (
        ROLES,
        "the photo must hold exactly one face, big and sharp enough: a rule of the image",
    ),
    ("POST", "/api/v1/people/{pid}/faces"): (ROLES, "as for the watchlist"),
    ("POST", "/api/v1/people/{pid}/id-check"): (ROLES, "as for the watchlist, for both photos"),
    ("PUT", "/api/v1/communities/{cid}/site-plan"): (
        ROLES,
        "the picture must be a PNG or JPEG of 16 to 8000 pixels a side: a rule of the image",
    ),
    ("GET", "/api/v1/alerts"): (
        ROLES,
        "after must be a cursor the list gave (next_after): text of the right shape is not "
        "yet one (keyset pagination, server.api.pagination)",
    ),
    ("GET", "/api/v1/events"): (ROLES, "as for GET alerts"),
    ("POST", "/api/v1/communities/{cid}/webhooks"): (
        ROLES,
        "the URL's host must resolve to public addresses only, checked by resolving it",
    ),
    ("PUT", "/api/v1/communities/{cid}/notification-gateway"): (ROLES, "as for webhooks"),
    ("POST", "/api/v1/notifications/push-subscriptions"): (
        ROLES,
        "Web Push must be set up on the server (VAPID_PRIVATE_KEY), and the push service's "
        "host must resolve to public addresses only, as for webhooks",
    ),
}


def accepts_positive_data(role: str) -> Any:
    """``positive_data_acceptance`` for ``role``, letting a 422 through where
    ``RULES_BEYOND_THE_SCHEMA`` says the server holds a rule the document cannot state."""

    def check(ctx: Any, response: Any, case: Any) -> bool | None:
        operation = (case.operation.method.upper(), case.operation.path)
        roles, _why = RULES_BEYOND_THE_SCHEMA.get(operation, ((), ""))
        if response.status_code == 422 and role in roles:
            return None
        return positive_data_acceptance(ctx, response, case)

    return check


@pytest.fixture(params=ROLES)
def caller(request, app, client, world: WorldIds, monkeypatch) -> tuple[str, dict, WorldIds]:
    """A signed-in caller of ``world``."""
    monkeypatch.setattr(stream, "STREAM_MAX_S", 0.2)  # the live stream ends, the check reads it
    return request.param, factories.Api(client, request.param).headers, world


def _with_world_ids(case: Any, world: WorldIds) -> None:
    for name in list(case.path_parameters or {}):
        if name in PATH_IDS:
            case.path_parameters[name] = getattr(world, PATH_IDS[name])
    if isinstance(case.body, dict):
        for name, row in BODY_IDS.items():
            if isinstance(case.body.get(name), str):
                case.body[name] = getattr(world, row)


@schema.parametrize()
@settings(
    deadline=None,  # a request that builds a QR code or hashes a password is slow at times
    # Each case is one request to a fresh world: nothing is too slow to generate, and the
    # world's fixtures do not change between examples.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_operation_does_what_the_document_says(case, caller, app) -> None:
    role, headers, world = caller
    case.operation.schema.app = app  # the checks' own probes (ignored_auth ...) go to it too
    _with_world_ids(case, world)
    case.call_and_validate(
        app=app,
        headers=headers,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[accepts_positive_data(role)],
    )


@pytest.mark.parametrize(
    "path",
    ["/users/{resident_a}", "/communities/{a}", "/buildings/{building_a}", "/devices/{device_a}"],
)
def test_an_empty_patch_changes_nothing_and_says_so(client, world: WorldIds, path: str) -> None:
    api = factories.Api(client, "admin")
    body = assert_problem(api.patch(world.fill(path), json={}), 422)
    assert body["errors"] == {"_schema": ["Nothing to change: send at least one field."]}
