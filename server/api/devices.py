"""Devices: provision (secret shown once), rotate the secret, disable."""

from __future__ import annotations

from typing import Any

from server.api import authenticated_blueprint, scope
from server.api.pagination import paginated
from server.api.schemas import DevicePatchSchema, DeviceSchema, DeviceSecretSchema
from server.devices import service as devices
from server.devices.broker_sync import sync_broker
from server.extensions import db
from server.models import Community, Device

blp = authenticated_blueprint(
    "devices", "Door terminals, barrier cameras, RFID readers, panic buttons"
)


@blp.get("/communities/<cid>/devices")
@blp.response(200, DeviceSchema(many=True))
@blp.paginate()
def list_devices(cid: str, pagination_parameters: Any) -> Any:
    """Devices with their online state and last seen time."""
    community = scope().get(Community, cid)
    query = scope().query(Device).where(Device.community_id == community.id)
    return paginated(query.order_by(Device.name), pagination_parameters)


@blp.post("/communities/<cid>/devices")
@blp.arguments(DeviceSchema)
@blp.response(201, DeviceSecretSchema)
def provision_device(data: dict[str, Any], cid: str) -> Any:
    """Provision a device. The answer carries its secret, which is never shown again."""
    provisioned = devices.provision(scope(), cid, data)
    db.session.commit()
    sync_broker()  # the broker accepts the new device at once
    return provisioned.as_answer()


@blp.get("/devices/<device_id>")
@blp.response(200, DeviceSchema)
def get_device(device_id: str) -> Any:
    return scope().get(Device, device_id)


@blp.patch("/devices/<device_id>")
@blp.arguments(DevicePatchSchema)
@blp.response(200, DeviceSchema)
def update_device(changes: dict[str, Any], device_id: str) -> Any:
    """Rename, rebind, or disable (``disabled: true``) a device."""
    device = devices.update(scope(), device_id, changes)
    db.session.commit()
    sync_broker()  # disabling removes the broker account and cuts the live connection
    return device


@blp.post("/devices/<device_id>/rotate-secret")
@blp.response(200, DeviceSecretSchema)
def rotate_device_secret(device_id: str) -> Any:
    """A new secret, shown once; the old one stops working at once."""
    provisioned = devices.rotate_secret(scope(), device_id)
    db.session.commit()
    sync_broker()  # the broker drops connections made with the old secret
    return provisioned.as_answer()
