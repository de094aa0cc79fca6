"""Device provisioning: the secret is shown once, and only hashes are kept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from gatekeeper.vocabulary import DEVICE_KINDS_WITH_ACCESS_POINT, AccessPointKind, DeviceKind
from hardware.broker import mosquitto_password_hash
from hardware.topics import device_prefix
from server.core import audit
from server.core.auth import device_secret_hash, new_device_secret
from server.core.errors import Invalid
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import AccessPoint, Community, Device, utcnow

# Which access points each kind of device may serve.
_SERVES = {
    DeviceKind.DOOR: {AccessPointKind.DOOR, AccessPointKind.GATE},
    DeviceKind.BARRIER: {AccessPointKind.BARRIER},
    DeviceKind.RFID_READER: set(AccessPointKind),
    DeviceKind.PANIC_BUTTON: set(AccessPointKind),
}


@dataclass(frozen=True)
class ProvisionedDevice:
    """A device and its secret, which exists only in this answer."""

    device: Device
    secret: str

    def as_answer(self) -> dict[str, Any]:
        device = self.device
        return {
            **{
                c: getattr(device, c)
                for c in (
                    "id",
                    "community_id",
                    "name",
                    "kind",
                    "access_point_id",
                    "zone",
                    "disabled",
                    "online",
                    "last_seen_at",
                    "firmware",
                    "secret_rotated_at",
                    "created_at",
                )
            },
            "secret": self.secret,
            "mqtt": {
                "username": device.id,
                "topic_prefix": device_prefix(device.community_id, device.id),
            },
        }

    def provisioning_text(self, server_url: str, mqtt_url: str | None = None) -> str:
        """What the installer's QR code holds: compact JSON with the server's address, the
        device id and its secret, and the broker's device listener when known
        (``docs/protocol.md``, "Provisioning by QR code")."""
        payload: dict[str, Any] = {
            "v": 1,
            "server": server_url.rstrip("/"),
            "device_id": self.device.id,
            "secret": self.secret,
        }
        if mqtt_url:
            payload["mqtt"] = mqtt_url
        return json.dumps(payload, separators=(",", ":"))


def set_secret(device: Device, secret: str | None = None) -> str:
    """Give ``device`` a secret (a new random one unless given); store only its hashes."""
    secret = secret or new_device_secret()
    device.secret_hash = device_secret_hash(secret)
    device.mqtt_password_hash = mosquitto_password_hash(secret)
    return secret


def _check_binding(
    scope: Scope, community_id: str, kind: DeviceKind, access_point_id: str | None, zone: Any
) -> AccessPoint | None:
    errors: dict[str, list[str]] = {}
    point = None
    if access_point_id:
        point = db.session.scalar(
            scope.query(AccessPoint).where(
                AccessPoint.id == access_point_id, AccessPoint.community_id == community_id
            )
        )
        if point is None:
            errors["access_point_id"] = [str(_l("No such access point in this community."))]
        elif point.kind not in _SERVES[kind]:
            errors["access_point_id"] = [
                str(
                    _l(
                        "A %(kind)s cannot serve a %(point)s.",
                        kind=word(kind),
                        point=word(point.kind),
                    )
                )
            ]
    elif kind in DEVICE_KINDS_WITH_ACCESS_POINT:
        errors["access_point_id"] = [
            str(_l("A %(kind)s must serve an access point.", kind=word(kind)))
        ]
    if kind is DeviceKind.RFID_READER and zone is None and point is None:
        errors["zone"] = [str(_l("An RFID reader must watch a zone."))]
    if errors:
        raise Invalid(_l("The device's binding is not valid."), errors=errors)
    return point


def provision(scope: Scope, community_id: str, data: dict[str, Any]) -> ProvisionedDevice:
    community = scope.get(Community, community_id)
    scope.require_write(Device)
    kind = data["kind"]
    point = _check_binding(scope, community.id, kind, data.get("access_point_id"), data.get("zone"))
    device = Device(
        community_id=community.id,
        name=data["name"],
        kind=kind,
        access_point_id=point.id if point else None,
        zone=data.get("zone") or (point.zone if point else None),
        plan_x=data.get("plan_x"),
        plan_y=data.get("plan_y"),
    )
    secret = set_secret(device)
    db.session.add(device)
    db.session.flush()
    audit.record(
        scope.user,
        "device.provision",
        community_id=community.id,
        target=device,
        details={
            "name": device.name,
            "kind": kind.value,
            "access_point_id": device.access_point_id,
        },
    )
    return ProvisionedDevice(device, secret)


def rotate_secret(scope: Scope, device_id: str) -> ProvisionedDevice:
    """A new secret; the old one stops working at once."""
    device = scope.writable(Device, device_id)
    secret = set_secret(device)
    device.secret_rotated_at = utcnow()
    audit.record(
        scope.user, "device.rotate_secret", community_id=device.community_id, target=device
    )
    return ProvisionedDevice(device, secret)


def update(scope: Scope, device_id: str, changes: dict[str, Any]) -> Device:
    device = scope.writable(Device, device_id)
    details: dict[str, Any] = {}
    if "access_point_id" in changes or "zone" in changes:
        access_point_id = changes.get("access_point_id", device.access_point_id)
        zone = changes.get("zone", device.zone)
        point = _check_binding(scope, device.community_id, device.kind, access_point_id, zone)
        device.access_point_id = point.id if point else None
        device.zone = zone or (point.zone if point else None)
        details.update(
            access_point_id=device.access_point_id, zone=device.zone.value if device.zone else None
        )
    if "name" in changes and changes["name"] != device.name:
        device.name = details["name"] = changes["name"]
    if "plan_x" in changes and (changes["plan_x"], changes["plan_y"]) != (
        device.plan_x,
        device.plan_y,
    ):  # the schema sends both or neither
        device.plan_x = details["plan_x"] = changes["plan_x"]
        device.plan_y = details["plan_y"] = changes["plan_y"]
    if "disabled" in changes and changes["disabled"] != device.disabled:
        device.disabled_at = utcnow() if changes["disabled"] else None
        details["disabled"] = changes["disabled"]
    if details:
        audit.record(
            scope.user,
            "device.update",
            community_id=device.community_id,
            target=device,
            details=details,
        )
    return device
