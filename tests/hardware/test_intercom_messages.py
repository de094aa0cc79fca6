"""The ``intercom_call`` event's payload: a unit, perhaps a building and a small snapshot."""

from __future__ import annotations

import base64
import json

import pytest

from hardware.messages import MAX_MQTT_SNAPSHOT_BYTES, EventMessage, PayloadError
from hardware.protocol import EventType

TS = "2026-11-21T08:30:00.000+08:00"


def _decode(**fields: object) -> EventMessage:
    payload = {"type": "intercom_call", "seq": 1, "ts": TS, **fields}
    return EventMessage.decode(json.dumps(payload).encode())


def test_a_call_keeps_its_unit_building_and_snapshot() -> None:
    snapshot = base64.b64encode(b"\xff\xd8\xff" + b"x" * 100).decode()
    message = _decode(unit=" 101 ", building="1号楼", snapshot=snapshot, extra="ignored")
    assert message.type is EventType.INTERCOM_CALL
    assert message.fields == {"unit": "101", "building": "1号楼", "snapshot": snapshot}
    assert _decode(unit="101").fields == {"unit": "101"}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"unit": ""},
        {"unit": "1" * 41},
        {"unit": 101},
        {"unit": "101", "building": "b" * 81},
        {"unit": "101", "snapshot": "not base64!"},
        {
            "unit": "101",
            "snapshot": base64.b64encode(b"x" * (MAX_MQTT_SNAPSHOT_BYTES + 3)).decode(),
        },
    ],
)
def test_a_bad_call_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(PayloadError):
        _decode(**fields)
