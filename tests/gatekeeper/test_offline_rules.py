"""gatekeeper.offline_rules: a door's held allowlist, its version rules and its offline
decisions (docs/protocol.md section 6, "Allowlists" and "Deciding offline")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gatekeeper import allowlist, passtokens
from gatekeeper.offline_rules import (
    Card,
    Code,
    Face,
    HeldList,
    Outcome,
    apply,
    decide,
)
from gatekeeper.vocabulary import Decision, Reason
from tests.support.allowlists import (
    COMMUNITY,
    DEVICE,
    FORGER,
    KEYS,
    POINT,
    delta,
    entry,
    full_list,
    resident_code,
)

# Monday 7 December 2026, 15:00 in Shanghai.
AT = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
LEASE_END = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)  # midnight in Shanghai
LEASE_START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
WEEKDAYS_8_TO_18 = [{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"}]
SERIAL = bytes.fromhex("9f3a1c2b7d000001")

OWNER = entry("per_owner", cards=["04A1B2C3"], code_serials=[SERIAL.hex().upper()])
TENANT = entry(
    "per_tenant", role="tenant", grant="tenant", windows=[(LEASE_START, LEASE_END)], cards=["0A0A"]
)
WORKER = entry(
    "per_worker",
    role="worker",
    grant="worker",
    windows=[(LEASE_START, datetime(2027, 1, 1, tzinfo=UTC))],
    schedule=WEEKDAYS_8_TO_18,
    cards=["0B0B"],
)
MOVED_OUT = entry("per_gone", windows=[(LEASE_START, AT - timedelta(days=1))], cards=["0C0C"])
ENTRIES = [OWNER, TENANT, WORKER, MOVED_OUT]


def _apply(held, message, **names):
    where = {"community_id": COMMUNITY, "access_point_id": POINT, "device_id": DEVICE, **names}
    return apply(held, message, KEYS, **where)


def _held(*entries, **header) -> HeldList:
    result = _apply(None, full_list(42, entries or ENTRIES, **header))
    assert result.outcome is Outcome.APPLIED, result.detail
    assert result.held is not None
    return result.held


def _reason(held, presented, at=AT) -> Reason:
    verdict = decide(held, presented, at)
    assert verdict is not None
    return verdict.reason


# Version rules ----------------------------------------------------------------------------


def test_a_verified_full_list_is_held_with_its_version_and_entries() -> None:
    held = _held()
    assert held.version == 42 and sorted(held.entries) == sorted(e["pid"] for e in ENTRIES)
    assert held.header.timezone == "Asia/Shanghai" and held.header.open_ms == 5000
    assert held.entries["per_owner"].cards == frozenset({"04A1B2C3"})


def test_a_forged_list_is_refused_and_the_held_one_kept() -> None:
    held = _held()
    forged = full_list(50, [entry("per_thief", cards=["FFFF"])], key=FORGER)
    result = _apply(held, forged)
    assert result.outcome is Outcome.REFUSED and "signature" in result.detail
    assert result.held is held
    assert _apply(None, forged).held is None


def test_a_tampered_list_is_refused() -> None:
    signed = full_list(43, ENTRIES)
    signed["entries"][0]["cards"].append("FFFF")
    assert _apply(_held(), signed).outcome is Outcome.REFUSED


@pytest.mark.parametrize(
    "names",
    [{"community_id": "com_other"}, {"access_point_id": "ap_other"}, {"device_id": "dev_other"}],
    ids=lambda names: next(iter(names)),
)
def test_a_list_for_another_door_is_refused(names: dict[str, str]) -> None:
    # signed by the right key, but the door is another one
    result = _apply(None, full_list(42, ENTRIES), **names)
    assert result.outcome is Outcome.REFUSED and next(iter(names)) in result.detail


def test_a_newer_or_equal_full_list_replaces_an_older_one_is_ignored() -> None:
    held = _held()
    newer = _apply(held, full_list(45, [OWNER]))
    assert newer.outcome is Outcome.APPLIED and newer.held.version == 45
    assert sorted(newer.held.entries) == ["per_owner"]
    again = _apply(newer.held, full_list(45, [OWNER, TENANT]))
    assert again.outcome is Outcome.APPLIED and len(again.held.entries) == 2
    older = _apply(newer.held, full_list(44, ENTRIES))
    assert older.outcome is Outcome.IGNORED and older.held is newer.held


def test_a_delta_applies_from_the_held_version_only() -> None:
    held = _held()
    step = _apply(
        held,
        delta(42, upsert=[entry("per_new", cards=["0D0D"])], remove=["per_owner"], open_ms=3000),
    )
    assert step.outcome is Outcome.APPLIED and step.held.version == 43
    assert "per_owner" not in step.held.entries and "per_new" in step.held.entries
    assert step.held.header.open_ms == 3000
    assert _reason(step.held, Card("04a1b2c3")) is Reason.UNKNOWN_CARD
    assert _reason(step.held, Card("0D0D")) is Reason.RESIDENT


def test_a_replayed_older_delta_is_ignored() -> None:
    held = _apply(_held(), delta(42, remove=["per_owner"])).held
    replay = _apply(held, delta(42, upsert=[OWNER]))
    assert replay.outcome is Outcome.IGNORED and replay.held is held
    assert "per_owner" not in replay.held.entries
    older = _apply(held, delta(40, upsert=[OWNER]))
    assert older.outcome is Outcome.IGNORED


def test_a_gap_asks_for_the_full_list() -> None:
    held = _held()
    gap = _apply(held, delta(43, upsert=[entry("per_new", cards=["0D0D"])]))
    assert gap.outcome is Outcome.GAP and gap.need_full_list and gap.held is held
    assert _apply(None, delta(42)).outcome is Outcome.GAP
    # the full list that follows is taken
    assert _apply(held, full_list(44, ENTRIES)).held.version == 44


def test_a_forged_or_foreign_delta_is_refused() -> None:
    held = _held()
    assert _apply(held, delta(42, remove=["per_owner"], key=FORGER)).outcome is Outcome.REFUSED
    assert _apply(held, delta(42, device_id="dev_other")).outcome is Outcome.REFUSED


def test_malformed_content_is_refused_even_when_signed() -> None:
    bad_grant = full_list(43, [entry("per_x", grant="visitor_pass")])
    assert _apply(None, bad_grant).outcome is Outcome.REFUSED
    bad_zone = full_list(43, ENTRIES, timezone="Mars/Olympus")
    assert _apply(None, bad_zone).outcome is Outcome.REFUSED
    bad_window = full_list(43, [{**OWNER, "windows": [{"from": "2026-12-01", "until": None}]}])
    assert _apply(None, bad_window).outcome is Outcome.REFUSED


def test_the_held_list_survives_a_round_trip_through_storage() -> None:
    hour = {"from": AT.isoformat(), "until": (AT + timedelta(hours=1)).isoformat()}
    held = _held(closures=[hour])
    stored = json.loads(json.dumps(held.to_state()))
    assert HeldList.from_state(stored) == held


# Deciding offline -----------------------------------------------------------------------


def test_no_list_or_an_emergency_release_decides_nothing() -> None:
    assert decide(None, Card("04A1B2C3"), AT) is None
    released = _held(mode={"kind": "emergency_release"})
    assert decide(released, Card("04A1B2C3"), AT) is None


def test_a_listed_card_opens_with_the_entrys_grant_and_the_open_time() -> None:
    verdict = decide(_held(), Card(" 04a1b2c3 "), AT)
    assert verdict is not None and verdict.granted and verdict.decision is Decision.GRANT
    assert (verdict.reason, verdict.pid, verdict.list_version, verdict.open_ms) == (
        Reason.RESIDENT,
        "per_owner",
        42,
        5000,
    )
    unknown = decide(_held(), Card("DEADBEEF"), AT)
    assert (unknown.reason, unknown.pid, unknown.decision) == (
        Reason.UNKNOWN_CARD,
        None,
        Decision.DENY,
    )


def test_a_tenants_card_stops_at_the_lease_end_to_the_second() -> None:
    held = _held()
    last = LEASE_END - timedelta(microseconds=1)
    assert _reason(held, Card("0A0A"), last) is Reason.TENANT
    assert _reason(held, Card("0A0A"), LEASE_END) is Reason.LEASE_EXPIRED
    assert _reason(held, Card("0A0A"), LEASE_START - timedelta(seconds=1)) is (
        Reason.LEASE_NOT_STARTED
    )
    assert _reason(held, Card("0A0A"), LEASE_START) is Reason.TENANT


def test_outside_their_windows_workers_are_outside_schedule_others_suspended() -> None:
    held = _held()
    assert _reason(held, Card("0C0C")) is Reason.PERSON_SUSPENDED
    assert _reason(held, Card("0B0B"), datetime(2027, 1, 4, 2, tzinfo=UTC)) is (
        Reason.OUTSIDE_SCHEDULE
    )


def test_a_workers_own_hours_are_read_in_the_access_points_zone() -> None:
    held = _held()
    # Monday 07:59:59 and 18:00 in Shanghai are outside; 08:00 is inside.
    assert _reason(held, Card("0B0B"), datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC)) is (
        Reason.OUTSIDE_SCHEDULE
    )
    assert _reason(held, Card("0B0B"), datetime(2026, 12, 7, 0, 0, tzinfo=UTC)) is Reason.WORKER
    assert _reason(held, Card("0B0B"), datetime(2026, 12, 7, 10, 0, tzinfo=UTC)) is (
        Reason.OUTSIDE_SCHEDULE
    )
    # Saturday afternoon
    assert _reason(held, Card("0B0B"), datetime(2026, 12, 12, 7, tzinfo=UTC)) is (
        Reason.OUTSIDE_SCHEDULE
    )


def test_the_access_points_hours() -> None:
    held = _held(schedule=[{"days": [1, 2, 3, 4, 5, 6, 7], "start": "06:00", "end": "23:00"}])
    assert _reason(held, Card("04A1B2C3")) is Reason.RESIDENT
    late = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    assert _reason(held, Card("04A1B2C3"), late) is Reason.OUTSIDE_SCHEDULE
    assert _reason(held, Card("DEADBEEF"), late) is Reason.UNKNOWN_CARD  # step 2 comes first


def test_holiday_closures_close_the_point_to_everyone_in_from_until() -> None:
    start = datetime(2026, 12, 31, 16, tzinfo=UTC)  # New Year's Day in Shanghai
    end = datetime(2027, 1, 1, 16, tzinfo=UTC)
    held = _held(closures=[{"from": start.isoformat(), "until": end.isoformat()}])
    assert _reason(held, Card("04A1B2C3"), start - timedelta(seconds=1)) is Reason.RESIDENT
    assert _reason(held, Card("04A1B2C3"), start) is Reason.HOLIDAY_CLOSED
    assert _reason(held, Card("0A0A"), start) is Reason.HOLIDAY_CLOSED
    assert _reason(held, Card("04A1B2C3"), end - timedelta(seconds=1)) is Reason.HOLIDAY_CLOSED
    assert _reason(held, Card("04A1B2C3"), end) is Reason.RESIDENT


def test_a_lockdown_lets_only_its_exempt_roles_pass() -> None:
    held = _held(mode={"kind": "lockdown", "exempt_roles": ["worker"]})
    owner = decide(held, Card("04A1B2C3"), AT)
    assert (owner.reason, owner.pid) == (Reason.LOCKDOWN, "per_owner")
    assert _reason(held, Card("0B0B")) is Reason.WORKER
    # the exempt still meet the later steps: a worker outside their hours stays out
    evening = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert _reason(held, Card("0B0B"), evening) is Reason.OUTSIDE_SCHEDULE
    # the lockdown comes before a closure
    closed = _held(
        mode={"kind": "lockdown", "exempt_roles": []},
        closures=[{"from": AT.isoformat(), "until": None}],
    )
    assert _reason(closed, Card("04A1B2C3")) is Reason.LOCKDOWN


def test_a_resident_code_opens_when_it_verifies_is_in_its_window_and_is_listed() -> None:
    held = _held()
    tag = passtokens.community_tag(COMMUNITY)
    window = (AT - timedelta(seconds=10), AT + timedelta(seconds=20))
    good = resident_code(SERIAL, *window)
    verdict = decide(held, Code(good, KEYS, tag), AT)
    assert (verdict.reason, verdict.pid) == (Reason.RESIDENT, "per_owner")
    cases = {
        "unlisted": (resident_code(b"\x07" * 8, *window), AT, Reason.PASS_INVALID),
        "forged": (resident_code(SERIAL, *window, key=FORGER), AT, Reason.PASS_INVALID),
        "not yet": (good, window[0] - timedelta(seconds=1), Reason.PASS_INVALID),
        "expired": (good, window[1], Reason.PASS_EXPIRED),
        "visitor pass": (
            resident_code(SERIAL, *window, kind=passtokens.TokenKind.PASS),
            AT,
            Reason.PASS_INVALID,
        ),
        "garbage": ("NOT A CODE", AT, Reason.PASS_INVALID),
    }
    for name, (text, at, reason) in cases.items():
        assert _reason(held, Code(text, KEYS, tag), at) is reason, name
    other_community = Code(good, KEYS, passtokens.community_tag("com_other"))
    assert _reason(held, other_community) is Reason.PASS_INVALID
    assert _reason(held, Code(good, {}, tag)) is Reason.PASS_INVALID  # no key set


def _vector(seed: int, offset: float = 0.0) -> list[float]:
    return [((seed * 37 + i * 11) % 17) / 40 + offset for i in range(128)]


def test_faces_are_decrypted_with_the_device_key_and_matched_within_the_tolerance() -> None:
    device_key = X25519PrivateKey.generate()
    sealer = allowlist.FaceSealer(device_key.public_key().public_bytes_raw(), DEVICE)
    alice, bob = _vector(1), _vector(2)

    def face(pid: str, vector: list[float]) -> dict[str, str]:
        return sealer.seal(pid, allowlist.pack_template(vector))

    message = full_list(
        42,
        [
            entry("per_alice", faces=[face("per_alice", alice)]),
            entry("per_bob", role="tenant", grant="tenant", faces=[face("per_bob", bob)]),
        ],
        enc=sealer.enc,
    )
    result = _apply(None, message, face_key=device_key)
    held = result.held
    assert held is not None and len(held.entries["per_alice"].templates) == 1
    near = [x + 0.5 / (128**0.5) * 0.9 for x in alice]  # at distance 0.45
    verdict = decide(held, Face(near), AT)
    assert (verdict.reason, verdict.pid) == (Reason.RESIDENT, "per_alice")
    far = [x + 0.5 / (128**0.5) * 1.1 for x in alice]  # at distance 0.55
    assert _reason(held, Face(far)) is Reason.UNKNOWN_FACE
    assert _reason(held, Face(bob)) is Reason.TENANT
    halfway = [(a + b) / 2 for a, b in zip(alice, bob, strict=True)]
    assert _reason(held, Face(halfway)) is Reason.UNKNOWN_FACE
    # without the device key the faces stay out of reach
    assert _apply(None, message).held.entries["per_alice"].templates == ()
    # a face sealed under another entry's pid, or to another key, does not open: the entry
    # keeps its card and has no face
    swapped = full_list(
        43, [entry("per_alice", cards=["0A"], faces=[face("per_bob", bob)])], enc=sealer.enc
    )
    opened = _apply(None, swapped, face_key=device_key).held
    assert opened.entries["per_alice"].templates == ()
    assert _reason(opened, Face(bob)) is Reason.UNKNOWN_FACE
    assert _reason(opened, Card("0A")) is Reason.RESIDENT
    other_key = _apply(None, message, face_key=X25519PrivateKey.generate()).held
    assert other_key.entries["per_alice"].templates == () and len(other_key.entries) == 2
    # kept on storage as opened templates
    assert HeldList.from_state(json.loads(json.dumps(held.to_state()))) == held


def test_two_people_about_as_near_are_told_apart_by_no_one() -> None:
    device_key = X25519PrivateKey.generate()
    sealer = allowlist.FaceSealer(device_key.public_key().public_bytes_raw(), DEVICE)
    alice = _vector(1)
    twin = [x + 0.05 / (128**0.5) for x in alice]  # 0.05 away: within the 0.06 margin
    cousin = [x + 0.2 / (128**0.5) for x in alice]  # 0.2 away: beyond it
    faces = {"per_alice": alice, "per_twin": twin, "per_cousin": cousin}
    entries = [
        entry(pid, faces=[sealer.seal(pid, allowlist.pack_template(vector))])
        for pid, vector in faces.items()
    ]
    both = _apply(None, full_list(42, entries[:2], enc=sealer.enc), face_key=device_key).held
    assert _reason(both, Face(alice)) is Reason.UNKNOWN_FACE
    apart = full_list(42, [entries[0], entries[2]], enc=sealer.enc)
    verdict = decide(_apply(None, apart, face_key=device_key).held, Face(alice), AT)
    assert (verdict.reason, verdict.pid) == (Reason.RESIDENT, "per_alice")
