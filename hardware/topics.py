"""The topic scheme of docs/protocol.md section 5; the only module that spells topics.

Per device: ``gk/v1/{community}/{device}/cmd|ack|evt|status``. Per community, written
only by the server: ``gk/v1/{community}/alerts`` (officers read it) and
``gk/v1/{community}/keys`` (the retained public key set its doors verify QR codes with).

The server's workers read device traffic through MQTT 5 shared subscriptions,
``$share/{group}/gk/v1/+/+/evt`` and so on: the broker hands each message to one member of
the group (``server_subscriptions``, ``share_group``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
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


def allowlist_topic(community_id: str, device_id: str) -> str:
    """The device's retained, signed full allowlist (docs/protocol.md section 6, "Allowlists")."""
    return f"{ROOT}/{community_id}/{device_id}/allowlist"


def allowlist_delta_topic(community_id: str, device_id: str) -> str:
    """The device's allowlist deltas, not retained (docs/protocol.md section 6, "Allowlists")."""
    return f"{ROOT}/{community_id}/{device_id}/allowlist/delta"


def officer_dispatch_topic(community_id: str, username: str) -> str:
    """``gk/v1/{community}/officers/{username}/dispatch``: alerts dispatched to one officer
    (docs/protocol.md section 5, "Dispatch"); only that officer and the server read it."""
    return f"{ROOT}/{community_id}/officers/{username}/dispatch"


# Every officer's dispatch topic of every community (the server's ACL pattern).
ALL_OFFICER_DISPATCH = f"{ROOT}/+/officers/+/dispatch"


# What the server subscribes to: every device's uplink topics. Community topics (``alerts``,
# ``keys``) have one level less, so these filters never match them.
SERVER_SUBSCRIPTIONS = tuple(f"{ROOT}/+/+/{suffix}" for suffix in ("ack", "evt", "status"))

SHARE_PREFIX = "$share/"
# The group name when the server has no broker password to derive one from.
DEFAULT_SHARE_GROUP = "gatekeeper"
_SAFE_GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def share_group(server_password: str | None) -> str:
    """The workers' share group: ``gk-`` and 20 hex digits derived from the server's password.

    Mosquitto checks an account's read rights only when it delivers a message, never when a
    client subscribes, so a device that subscribed to the very same shared subscription would
    join the group and take its turn at every message, which Mosquitto then drops. A name
    only the server's processes can compute keeps devices out of the group. Without a
    password (an anonymous broker, where any client may read anything anyway) it is
    ``gatekeeper``.
    """
    if not server_password:
        return DEFAULT_SHARE_GROUP
    digest = hmac.new(server_password.encode(), b"gatekeeper share group", hashlib.sha256)
    return "gk-" + digest.hexdigest()[:20]


def shared(group: str, topic_filter: str) -> str:
    """``$share/{group}/{topic_filter}``: one member of ``group`` gets each message."""
    if not _SAFE_GROUP.match(group):
        raise ValueError(f"unsafe share group {group!r}")
    return f"{SHARE_PREFIX}{group}/{topic_filter}"


def server_subscriptions(group: str) -> tuple[str, ...]:
    """The workers' shared subscriptions to every device's ``ack``, ``evt`` and ``status``."""
    return tuple(shared(group, topic_filter) for topic_filter in SERVER_SUBSCRIPTIONS)


def topic_filter_of(subscription: str) -> str:
    """The filter topics are matched against: ``subscription`` without ``$share/{group}/``."""
    if not subscription.startswith(SHARE_PREFIX):
        return subscription
    _group, _sep, topic_filter = subscription[len(SHARE_PREFIX) :].partition("/")
    return topic_filter


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
