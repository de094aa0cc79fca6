"""A device's own page for the property office: provision one (its secret and the
installer's QR code shown once), rename or rebind it, rotate its secret, disable or enable it.

Staff and admins only: officers (who watch the device console) and residents find no such
page. The changes are the devices room's (``server.devices.service``), as the API's are,
and the broker's files follow each one (``sync_broker``).
"""

from __future__ import annotations

import base64
from typing import Any

import marshmallow as ma
from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from gatekeeper.vocabulary import DeviceKind, Zone
from server.api.schemas import DevicePatchSchema, DeviceSchema
from server.core.errors import NotFound
from server.core.scope import Scope
from server.devices import service as devices
from server.devices.broker_sync import sync_broker
from server.extensions import db
from server.models import AccessPoint, Community, Device, UserRole
from server.passes import images as qrimages
from server.web import bp
from server.web.helpers import (
    access_points_of,
    add_error,
    attempt,
    flash_ok,
    merge_errors,
    refusal_errors,
    save_form,
    scope_for,
    stand_in,
)

# A secret on the page: never kept by a cache, never sent on in a Referer header.
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_FRIENDLY = {
    "name": _l("Enter a name (at most 80 characters)."),
    "kind": _l("Choose a kind."),
    "zone": _l("Choose a zone."),
    "access_point_id": _l("Choose an access point."),
}


def _staff() -> Scope:
    return scope_for(UserRole.STAFF, UserRole.ADMIN)


def _field(key: str) -> str:
    return key or "form"


def _device_data(
    form: MultiDict[str, str], schema: ma.Schema, errors: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The form as the service's input (``kind`` only when the schema takes it), every message
    in ``errors``; None when the input cannot even be checked by the service."""
    name = form.get("name", "").strip()
    if not name:
        add_error(errors, "name", _FRIENDLY["name"])
    payload: dict[str, Any] = {
        "name": stand_in(name),
        "access_point_id": form.get("access_point_id") or None,
        "zone": form.get("zone") or None,
    }
    if "kind" in schema.fields:
        payload["kind"] = form.get("kind", "")
    try:
        return schema.load(payload)
    except ma.ValidationError as error:
        merge_errors(errors, error.messages, _field, _FRIENDLY)
        return None


def _secret_page(provisioned: devices.ProvisionedDevice, rotated: bool) -> Response:
    """The one page that shows the secret: the credential, the MQTT account and the
    installer's QR code (``docs/protocol.md``, "Provisioning by QR code")."""
    device = provisioned.device
    server_url = url_for("web.home", _external=True).rstrip("/")
    text = provisioned.provisioning_text(server_url)
    answer = provisioned.as_answer()
    body = render_template(
        "device_secret.html",
        device=device,
        community=db.session.get(Community, device.community_id),
        point=db.session.get(AccessPoint, device.access_point_id)
        if device.access_point_id
        else None,
        secret=provisioned.secret,
        mqtt=answer["mqtt"],
        provisioning=text,
        qr="data:image/png;base64," + base64.b64encode(qrimages.png(text)).decode(),
        rotated=rotated,
    )
    return Response(body, mimetype="text/html", headers=_PRIVATE)


# Provisioning ---------------------------------------------------------------------------------


def _new_page(
    scope: Scope,
    community: Community,
    values: MultiDict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
) -> tuple[str, int]:
    return render_template(
        "device_new.html",
        community=community,
        values=values,
        errors=errors,
        kinds=list(DeviceKind),
        zones=list(Zone),
        points=access_points_of(scope, community.id),
    ), status


@bp.route("/communities/<cid>/devices/new", methods=["GET", "POST"])
@login_required
def device_new(cid: str) -> Any:
    scope = _staff()
    community = scope.get(Community, cid)
    if request.method == "GET":
        values = MultiDict(
            {"kind": "door", "access_point_id": request.args.get("access_point", "")}
        )
        return _new_page(scope, community, values, {})
    errors: dict[str, list[str]] = {}
    data = _device_data(request.form, DeviceSchema(), errors)
    provisioned = None
    if data is not None:
        provisioned = save_form(
            lambda: devices.provision(scope, community.id, data),
            errors,
            lambda error: refusal_errors(errors, error, _field),
        )
    if provisioned is None:
        return _new_page(scope, scope.get(Community, cid), request.form, errors, 422)
    sync_broker()  # the broker accepts the new device at once
    return _secret_page(provisioned, rotated=False)


# A device's page ------------------------------------------------------------------------------


def _device_page(
    scope: Scope,
    device: Device,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    community = db.session.get(Community, device.community_id)
    if values is None:
        values = MultiDict(
            {
                "name": device.name,
                "access_point_id": device.access_point_id or "",
                "zone": device.zone.value if device.zone else "",
            }
        )
    return render_template(
        "device.html",
        community=community,
        device=device,
        point=db.session.get(AccessPoint, device.access_point_id)
        if device.access_point_id
        else None,
        points=access_points_of(scope, community.id),
        zones=list(Zone),
        values=values,
        errors=errors or {},
    ), status


@bp.get("/devices/<device_id>")
@login_required
def device_page(device_id: str) -> tuple[str, int]:
    scope = _staff()
    return _device_page(scope, scope.get(Device, device_id))


@bp.post("/devices/<device_id>")
@login_required
def device_edit(device_id: str) -> Any:
    scope = _staff()
    device = scope.get(Device, device_id)
    errors: dict[str, list[str]] = {}
    data = _device_data(request.form, DevicePatchSchema(), errors)
    saved = None
    if data is not None:
        saved = save_form(
            lambda: devices.update(scope, device.id, data),
            errors,
            lambda error: refusal_errors(errors, error, _field),
        )
    if saved is None:
        return _device_page(scope, scope.get(Device, device_id), request.form, errors, 422)
    sync_broker()
    flash_ok(_("Saved."))
    return redirect(url_for("web.device_page", device_id=device_id), 303)


@bp.post("/devices/<device_id>/rotate-secret")
@login_required
def device_rotate_secret(device_id: str) -> Response:
    scope = _staff()
    device = scope.get(Device, device_id)
    try:
        provisioned = devices.rotate_secret(scope, device.id)
        db.session.commit()
    except NotFound:
        db.session.rollback()
        raise
    sync_broker()  # the broker drops connections made with the old secret
    return _secret_page(provisioned, rotated=True)


def _set_disabled(device_id: str, disabled: bool) -> Response:
    scope = _staff()
    device = scope.get(Device, device_id)
    name = device.name
    done = (
        _("%(name)s is disabled: it can no longer verify or connect.", name=name)
        if disabled
        else _("%(name)s is enabled again.", name=name)
    )
    if attempt(lambda: devices.update(scope, device.id, {"disabled": disabled}), done):
        sync_broker()  # disabling removes the broker account and cuts the live connection
    return redirect(url_for("web.device_page", device_id=device_id), 303)


@bp.post("/devices/<device_id>/disable")
@login_required
def device_disable(device_id: str) -> Response:
    return _set_disabled(device_id, True)


@bp.post("/devices/<device_id>/enable")
@login_required
def device_enable(device_id: str) -> Response:
    return _set_disabled(device_id, False)
