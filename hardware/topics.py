"""The topic scheme of docs/protocol.md section 5; the only module that spells topics.

Per device: ``gk/v1/{community}/{device}/cmd|ack|evt|status``. Per community, written
only by the server: ``gk/v1/{community}/alerts`` (officers read it) and
``gk/v1/{community}/keys`` (the retained public key set its doors verify QR codes with).
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "gk/v1"
DEVICE_SUFFIXES = ("cmd", "ack", "evt", "status")


def device_prefix(community_id: str, device_id: str) -> str:
    """``gk/v1/{community_id}/{device_id}/``: where a device's topics live."""
    return f"{ROOT}/{community_id}/{device_id}/"


def device_topic(community_id: str, device_id: str, suffix: str) -> str:
    if suffix not in DEVICE_SUFFIXES:
        raise ValueError(f"unknown device topic suffix {suffix!r}")
    return device_prefix(community_id, device_id) + suffix


def alerts_topic(community_id: str) -> str:
    return f"{ROOT}/{community_id}/alerts"


def keys_topic(community_id: str) -> str:
    """The community's retained key set: the public keys that sign its QR codes."""
    return f"{ROOT}/{community_id}/keys"


# What the server subscribes to: every device's uplink topics. Community topics (``alerts``,
# ``keys``) have one level less, so these filters never match them.
SERVER_SUBSCRIPTIONS = tuple(f"{ROOT}/+/+/{suffix}" for suffix in ("ack", "evt", "status"))


@dataclass(frozen=True)
class DeviceTopic:
    """A parsed device topic."""

    community_id: str
    device_id: str
    suffix: str


def parse_device_topic(topic: str) -> DeviceTopic | None:
    """The parts of a device topic, or None for anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[4] not in DEVICE_SUFFIXES:
        return None
    if not parts[2] or not parts[3]:
        return None
    return DeviceTopic(parts[2], parts[3], parts[4])
