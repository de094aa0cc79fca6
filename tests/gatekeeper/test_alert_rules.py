"""The alert rules on plain values: wandering, not seen, patrol rounds, spoofing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.alert_rules import (
    Exit,
    GuardianPass,
    Outcome,
    Round,
    TagRead,
    WanderingSettings,
    Wearer,
    absence_start,
    daily_window,
    judge_round,
    judge_wandering,
    patrol_rounds,
    spoof_attempt,
)
from gatekeeper.schedule import WeeklySchedule
from gatekeeper.vocabulary import AlertType, PersonRole, Severity, Zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
SETTINGS = WanderingSettings(time_zone="Asia/Shanghai")
WINDOW = SETTINGS.guardian_window
# Tuesday 2026-11-24, 10:00 in Shanghai.
DAY = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
NIGHT = datetime(2026, 11, 24, 23, 30, tzinfo=SHANGHAI)

ELDER = Wearer("per_elder", frozenset({PersonRole.ELDER}), wander_risk=True)
CHILD = Wearer("per_child", frozenset({PersonRole.CHILD}), wander_risk=False)
RISKY_CHILD = Wearer("per_child", frozenset({PersonRole.CHILD}), wander_risk=True)


def read(
    at: datetime = DAY, zone: Zone | None = Zone.PERIMETER, received_at: datetime | None = None
) -> TagRead:
    return TagRead("dve_1", "dev_gate", zone, "ap_gate", at, received_at or at)


def settled(at: datetime) -> datetime:
    return at + WINDOW + timedelta(seconds=1)


# Wandering ----------------------------------------------------------------------------------


def test_an_elder_at_risk_at_the_perimeter_alerts_medium_by_day() -> None:
    verdict = judge_wandering(read(), ELDER, [], SETTINGS, settled(DAY))
    assert verdict.outcome is Outcome.ALERT
    assert (verdict.alert_type, verdict.severity, verdict.exit) == (
        AlertType.ELDER_WANDERING,
        Severity.MEDIUM,
        Exit.PERIMETER,
    )


def test_at_night_the_alert_is_high_even_after_midnight() -> None:
    for at in (NIGHT, datetime(2026, 11, 25, 5, 59, tzinfo=SHANGHAI)):
        verdict = judge_wandering(read(at), RISKY_CHILD, [], SETTINGS, settled(at))
        assert (verdict.alert_type, verdict.severity) == (AlertType.CHILD_WANDERING, Severity.HIGH)
    morning = datetime(2026, 11, 25, 6, 0, tzinfo=SHANGHAI)
    assert judge_wandering(read(morning), ELDER, [], SETTINGS, settled(morning)).severity is (
        Severity.MEDIUM
    )


def test_night_is_read_in_the_community_zone() -> None:
    # 23:30 in Shanghai is 15:30 UTC: night there, whatever the server's clock says.
    at = NIGHT.astimezone(UTC)
    assert judge_wandering(read(at), ELDER, [], SETTINGS, settled(at)).severity is Severity.HIGH
    london = WanderingSettings(time_zone="Europe/London")
    assert judge_wandering(read(at), ELDER, [], london, settled(at)).severity is Severity.MEDIUM


def test_reads_the_rule_does_not_watch_are_ignored() -> None:
    no_risk = Wearer("per_x", frozenset({PersonRole.ELDER}), wander_risk=False)
    resident = Wearer("per_y", frozenset({PersonRole.RESIDENT}), wander_risk=True)
    later = settled(DAY)
    assert judge_wandering(read(), no_risk, [], SETTINGS, later).outcome is Outcome.IGNORE
    assert judge_wandering(read(), resident, [], SETTINGS, later).outcome is Outcome.IGNORE
    building = read(zone=Zone.BUILDING)
    assert judge_wandering(building, ELDER, [], SETTINGS, later).outcome is Outcome.IGNORE
    assert judge_wandering(read(zone=None), ELDER, [], SETTINGS, later).outcome is Outcome.IGNORE


def test_a_guardian_at_the_same_exit_before_or_after_means_accompanied() -> None:
    before = GuardianPass("per_mum", DAY - timedelta(minutes=4), reader_id="dev_gate")
    after = GuardianPass("per_mum", DAY + WINDOW, access_point_id="ap_gate")  # face at the gate
    for guardian in (before, after):
        verdict = judge_wandering(read(), ELDER, [guardian], SETTINGS, settled(DAY))
        assert verdict.outcome is Outcome.ACCOMPANIED and verdict.guardian_id == "per_mum"


def test_a_guardian_elsewhere_or_too_far_in_time_does_not_count() -> None:
    other_exit = GuardianPass("per_mum", DAY, reader_id="dev_back", access_point_id="ap_back")
    too_early = GuardianPass("per_mum", DAY - WINDOW - timedelta(seconds=1), reader_id="dev_gate")
    too_late = GuardianPass("per_mum", DAY + WINDOW + timedelta(seconds=1), reader_id="dev_gate")
    verdict = judge_wandering(
        read(), ELDER, [other_exit, too_early, too_late], SETTINGS, settled(DAY) + WINDOW
    )
    assert verdict.outcome is Outcome.ALERT


def test_a_reader_without_access_point_matches_guardians_by_reader_only() -> None:
    lone = TagRead("dve_1", "dev_gate", Zone.PERIMETER, None, DAY, DAY)
    face_somewhere = GuardianPass("per_mum", DAY, access_point_id=None)
    assert judge_wandering(lone, ELDER, [face_somewhere], SETTINGS, settled(DAY)).outcome is (
        Outcome.ALERT
    )


def test_an_unaccompanied_read_waits_for_the_guardian_window() -> None:
    verdict = judge_wandering(read(), ELDER, [], SETTINGS, DAY + timedelta(minutes=1))
    assert verdict.outcome is Outcome.WAIT and verdict.settles_at == DAY + WINDOW
    assert judge_wandering(read(), ELDER, [], SETTINGS, DAY + WINDOW).outcome is Outcome.ALERT
    # Without a window there is nothing to wait for.
    at_once = WanderingSettings(time_zone="Asia/Shanghai", guardian_window=timedelta(0))
    assert judge_wandering(read(), ELDER, [], at_once, DAY).outcome is Outcome.ALERT


def test_a_reader_clock_running_ahead_does_not_postpone_the_verdict() -> None:
    ahead = read(DAY + timedelta(hours=2), received_at=DAY)
    assert judge_wandering(ahead, ELDER, [], SETTINGS, settled(DAY)).outcome is Outcome.ALERT


def test_a_child_at_the_kindergarten_reader_in_school_hours() -> None:
    at = read(DAY, zone=Zone.KINDERGARTEN)
    verdict = judge_wandering(at, CHILD, [], SETTINGS, settled(DAY))  # no wander-risk needed
    assert (verdict.outcome, verdict.alert_type, verdict.exit) == (
        Outcome.ALERT,
        AlertType.CHILD_WANDERING,
        Exit.KINDERGARTEN,
    )
    assert judge_wandering(at, ELDER, [], SETTINGS, settled(DAY)).outcome is Outcome.IGNORE


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 11, 24, 7, 59, tzinfo=SHANGHAI),  # before school
        datetime(2026, 11, 24, 17, 0, tzinfo=SHANGHAI),  # school is out
        datetime(2026, 11, 28, 10, 0, tzinfo=SHANGHAI),  # Saturday
    ],
)
def test_a_child_at_the_kindergarten_reader_outside_school_hours_is_quiet(at) -> None:
    verdict = judge_wandering(read(at, zone=Zone.KINDERGARTEN), CHILD, [], SETTINGS, settled(at))
    assert verdict.outcome is Outcome.IGNORE


def test_daily_windows() -> None:
    assert daily_window("06:00", "06:00") is None
    evening = daily_window("18:00", "00:00")
    assert evening is not None and evening.contains(
        datetime(2026, 11, 24, 23, 59, tzinfo=SHANGHAI), SHANGHAI
    )
    assert not evening.contains(datetime(2026, 11, 25, 0, 0, tzinfo=SHANGHAI), SHANGHAI)


# Not seen -----------------------------------------------------------------------------------


def test_an_absence_counts_from_the_last_sighting_or_from_enrolment() -> None:
    now = DAY
    seen = now - timedelta(hours=24)
    assert absence_start(seen, now - timedelta(days=90), now, 24) == seen
    assert absence_start(seen + timedelta(seconds=1), now - timedelta(days=90), now, 24) is None
    enrolled = now - timedelta(hours=30)
    assert absence_start(None, enrolled, now, 24) == enrolled
    assert absence_start(None, now - timedelta(hours=2), now, 24) is None


# Patrol -------------------------------------------------------------------------------------


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def test_rounds_without_a_schedule_follow_each_other_from_local_midnight() -> None:
    rounds = patrol_rounds(60, None, "Asia/Shanghai", after=local(24, 9, 30), until=local(24, 12))
    assert rounds == [
        Round(local(24, 9), local(24, 10)),
        Round(local(24, 10), local(24, 11)),
        Round(local(24, 11), local(24, 12)),
    ]
    # The round that ends exactly at ``after`` was judged before.
    assert patrol_rounds(60, None, "Asia/Shanghai", local(24, 10), local(24, 10, 59)) == []


def test_rounds_follow_a_night_schedule_across_midnight() -> None:
    night = WeeklySchedule.from_json([{"days": [2], "start": "22:00", "end": "01:30"}])
    rounds = patrol_rounds(60, night, "Asia/Shanghai", after=local(24, 12), until=local(25, 12))
    # 22-23, 23-24, 00-01; the half hour left is not a round. Wednesday has no window.
    assert rounds == [
        Round(local(24, 22), local(24, 23)),
        Round(local(24, 23), local(25, 0)),
        Round(local(25, 0), local(25, 1)),
    ]


def test_rounds_keep_their_length_across_a_clock_change() -> None:
    # London falls back on 2026-10-25 at 02:00 BST: that local day lasts 25 hours.
    london = ZoneInfo("Europe/London")
    start = datetime(2026, 10, 25, 0, 0, tzinfo=london)
    rounds = patrol_rounds(60, None, "Europe/London", start, start + timedelta(days=1))
    assert all(r.end - r.start == timedelta(hours=1) for r in rounds)
    assert len(rounds) == 25


def test_a_round_is_complete_only_when_every_checkpoint_saw_a_tag() -> None:
    patrol_round = Round(local(24, 9), local(24, 10))
    reads = [("dev_a", local(24, 9, 5)), ("dev_b", local(24, 9, 40)), ("dev_c", local(24, 10))]
    result = judge_round(patrol_round, ["dev_a", "dev_b", "dev_c"], reads)
    assert result.missed == ("dev_c",) and not result.complete  # 10:00 is the next round
    reads.append(("dev_c", local(24, 9, 59)))
    assert judge_round(patrol_round, ["dev_a", "dev_b", "dev_c"], reads).complete


GUARD, OTHER_GUARD, ELDER_TAG = "6A4D0001", "6A4D0002", "E1DE5001"
ROUTE = ["dev_a", "dev_b", "dev_c"]


def test_a_guards_reads_complete_a_round_and_say_who_and_when() -> None:
    patrol_round = Round(local(24, 9), local(24, 10))
    reads = [
        ("dev_a", local(24, 9, 5), GUARD),
        ("dev_a", local(24, 9, 6), GUARD),  # read twice: the first read counts
        ("dev_b", local(24, 9, 20), OTHER_GUARD),
        ("dev_c", local(24, 9, 40), GUARD.lower()),  # EPCs compare in upper case
    ]
    result = judge_round(patrol_round, ROUTE, reads, guard_tags={GUARD, OTHER_GUARD})
    assert result.complete
    assert [(v.checkpoint, v.at, v.tag) for v in result.visits] == [
        ("dev_a", local(24, 9, 5), GUARD),
        ("dev_b", local(24, 9, 20), OTHER_GUARD),
        ("dev_c", local(24, 9, 40), GUARD.lower()),
    ]


def test_an_elders_tag_at_a_checkpoint_visits_nothing() -> None:
    patrol_round = Round(local(24, 9), local(24, 10))
    reads = [
        ("dev_a", local(24, 9, 5), GUARD),
        ("dev_b", local(24, 9, 20), ELDER_TAG),
        ("dev_c", local(24, 9, 40), GUARD),
        ("dev_b", local(24, 9, 41)),  # a read without a tag
    ]
    result = judge_round(patrol_round, ROUTE, reads, guard_tags={GUARD})
    assert result.missed == ("dev_b",)
    assert [v.checkpoint for v in result.visits] == ["dev_a", "dev_c"]
    # Without the guard filter the same reads complete it (the old rule).
    assert judge_round(patrol_round, ROUTE, reads).complete
    # No guard at all: nothing counts.
    assert judge_round(patrol_round, ROUTE, reads, guard_tags=set()).missed == tuple(ROUTE)


def test_on_an_ordered_route_a_read_out_of_turn_does_not_advance() -> None:
    patrol_round = Round(local(24, 9), local(24, 10))
    # C before B: C is out of turn and counts for nothing; B then counts; C is missed.
    reads = [
        ("dev_c", local(24, 9, 30), GUARD),
        ("dev_a", local(24, 9, 5), GUARD),
        ("dev_b", local(24, 9, 45), GUARD),
    ]
    result = judge_round(patrol_round, ROUTE, reads, guard_tags={GUARD}, ordered=True)
    assert result.missed == ("dev_c",)
    assert [v.checkpoint for v in result.visits] == ["dev_a", "dev_b"]
    # C read again in its turn completes the round; any guard may carry it on.
    reads.append(("dev_c", local(24, 9, 50), OTHER_GUARD))
    result = judge_round(patrol_round, ROUTE, reads, guard_tags={GUARD, OTHER_GUARD}, ordered=True)
    assert result.complete
    assert result.visits[-1].at == local(24, 9, 50)
    # Nothing at A: B and C in order still miss everything (A's turn never came).
    late = [("dev_b", local(24, 9, 10), GUARD), ("dev_c", local(24, 9, 20), GUARD)]
    assert judge_round(patrol_round, ROUTE, late, guard_tags={GUARD}, ordered=True).missed == (
        tuple(ROUTE)
    )


def test_an_unordered_route_takes_its_checkpoints_in_any_order() -> None:
    patrol_round = Round(local(24, 9), local(24, 10))
    reads = [
        ("dev_c", local(24, 9, 5), GUARD),
        ("dev_b", local(24, 9, 20), GUARD),
        ("dev_a", local(24, 9, 40), GUARD),
    ]
    result = judge_round(patrol_round, ROUTE, reads, guard_tags={GUARD})
    assert result.complete
    assert [v.checkpoint for v in result.visits] == ["dev_c", "dev_b", "dev_a"]
    assert judge_round(patrol_round, ROUTE, reads, guard_tags={GUARD}, ordered=True).missed == (
        "dev_b",
        "dev_c",
    )


# Spoofing -----------------------------------------------------------------------------------


def test_spoof_attempts_need_the_threshold_within_the_window() -> None:
    window = timedelta(minutes=10)
    now = DAY
    three = [now - timedelta(minutes=9), now - timedelta(minutes=1), now]
    assert spoof_attempt(three, now, 3, window)
    assert not spoof_attempt(three[1:], now, 3, window)
    spread = [now - timedelta(minutes=10), now - timedelta(minutes=1), now]  # first is out
    assert not spoof_attempt(spread, now, 3, window)
