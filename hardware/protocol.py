"""Names fixed by the device protocol (docs/protocol.md section 5)."""

from enum import StrEnum


class Command(StrEnum):
    """What the server can tell a device to do."""

    OPEN = "open"
    LOCK = "lock"
    UNLOCK_HOLD = "unlock_hold"
    DISPLAY = "display"
    REBOOT = "reboot"


class CommandStatus(StrEnum):
    """A command's outcome as the server records it: ``queued`` until the broker has
    acknowledged the publish (PUBACK), then ``sent``, then the device's answer."""

    QUEUED = "queued"
    SENT = "sent"
    ACKED = "acked"
    FAILED = "failed"
    EXPIRED = "expired"


class EventType(StrEnum):
    """Event types a device publishes on its ``evt`` topic."""

    DOOR_OPENED = "door_opened"
    DOOR_CLOSED = "door_closed"
    DOOR_FORCED = "door_forced"
    DOOR_HELD_OPEN = "door_held_open"
    EXIT_REQUEST = "exit_request"
    TAMPER = "tamper"
    PANIC = "panic"
    TAG_READ = "tag_read"
    HEARTBEAT = "heartbeat"
    # A QR pass the door admitted offline, uploaded for the server to count (docs/devices.md).
    PASS_USED = "pass_used"  # noqa: S105 (an event name)
    # A visitor at the door called a unit on the intercom (docs/protocol.md, "The door intercom").
    INTERCOM_CALL = "intercom_call"
    # A decision a door made from its allowlist while the server did not answer (docs/protocol.md
    # section 6, "Offline decisions").
    OFFLINE_DECISION = "offline_decision"
