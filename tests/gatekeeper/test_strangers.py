"""Stranger clusters and their alert rules, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import numpy as np
import pytest

from gatekeeper.strangers import (
    Sighting,
    StrangerThresholds,
    Trigger,
    assign,
    is_night,
    judge,
    running_mean,
    summary,
)

# 10:00 in Shanghai (UTC+8): daytime.
DAY = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
RULES = StrangerThresholds()


def _unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector) * 0.9


def _seen(minutes: float, point: str | None = "ap_1", *, at: datetime = DAY) -> Sighting:
    return Sighting(at + timedelta(minutes=minutes), point)


# Clusters --------------------------------------------------------------------------------------


def test_no_clusters_means_a_new_one() -> None:
    assignment = assign(np.zeros((0, 128), dtype=np.float32), _unit(1), 0.5)
    assert (assignment.index, assignment.distance) == (None, None)


def test_a_face_joins_the_nearest_cluster_within_the_tolerance() -> None:
    centroids = np.vstack([_unit(1), _unit(2), _unit(3)])
    near_second = centroids[1] + 0.01
    assignment = assign(centroids, near_second, 0.5)
    assert assignment.index == 1
    assert assignment.distance == pytest.approx(0.01 * np.sqrt(128), rel=1e-4)


def test_a_face_far_from_every_cluster_starts_a_new_one() -> None:
    centroids = np.vstack([_unit(1), _unit(2)])
    assignment = assign(centroids, _unit(9), 0.5)
    assert assignment.index is None and assignment.distance > 0.5


def test_the_tolerance_is_strict() -> None:
    centroid = np.zeros(128, dtype=np.float32)
    probe = np.zeros(128, dtype=np.float32)
    probe[0] = 0.5
    assert assign(centroid[None, :], probe, 0.5).index is None
    assert assign(centroid[None, :], probe, 0.5001).index == 0


def test_running_mean_is_the_mean_of_every_face() -> None:
    faces = [_unit(seed) for seed in range(5)]
    centroid = faces[0]
    for count, face in enumerate(faces[1:], start=1):
        centroid = running_mean(centroid, count, face)
    assert centroid.dtype == np.float32
    np.testing.assert_allclose(centroid, np.mean(faces, axis=0), atol=1e-6)
    with pytest.raises(ValueError):
        running_mean(faces[0], -1, faces[1])


# Rules -----------------------------------------------------------------------------------------


def test_below_every_threshold_no_alert() -> None:
    verdict = judge([_seen(0), _seen(30)], RULES, DAY + timedelta(minutes=30))
    assert not verdict.alert and verdict.triggers == ()
    assert len(verdict.in_window) == 2


def test_enough_sightings_within_the_window() -> None:
    sightings = [_seen(0), _seen(30), _seen(60)]
    verdict = judge(sightings, RULES, DAY + timedelta(minutes=60))
    assert verdict.triggers == (Trigger.SIGHTINGS,)


def test_sightings_outside_the_window_do_not_count() -> None:
    sightings = [_seen(0), _seen(25 * 60), _seen(25 * 60 + 5)]
    now = DAY + timedelta(minutes=25 * 60 + 5)
    verdict = judge(sightings, RULES, now)
    assert not verdict.alert and len(verdict.in_window) == 2
    # The window is (now - window, now]: a sighting exactly 24 h old is out.
    exact = [_seen(0), _seen(24 * 60 - 1), _seen(24 * 60)]
    assert judge(exact, RULES, DAY + timedelta(hours=24)).triggers == ()
    # Later sightings (a clock ahead) are not counted either.
    assert len(judge([_seen(0), _seen(10)], RULES, DAY).in_window) == 1


def test_two_access_points() -> None:
    verdict = judge([_seen(0, "ap_1"), _seen(5, "ap_2")], RULES, DAY + timedelta(minutes=5))
    assert verdict.triggers == (Trigger.ACCESS_POINTS,)
    # A deleted access point is no second door.
    assert not judge([_seen(0, "ap_1"), _seen(5, None)], RULES, DAY + timedelta(minutes=5)).alert


def test_night_alerts_at_the_first_sighting() -> None:
    night = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    verdict = judge([Sighting(night, "ap_1")], RULES, night)
    assert verdict.triggers == (Trigger.NIGHT,)


def test_every_rule_at_once() -> None:
    night = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    sightings = [_seen(0, "ap_1", at=night), _seen(1, "ap_2", at=night), _seen(2, at=night)]
    verdict = judge(sightings, RULES, night + timedelta(minutes=2))
    assert verdict.triggers == (Trigger.SIGHTINGS, Trigger.ACCESS_POINTS, Trigger.NIGHT)


def test_thresholds_are_the_communitys() -> None:
    rules = StrangerThresholds(sightings=5, window=timedelta(hours=1), access_points=3)
    sightings = [_seen(m, f"ap_{m % 2}") for m in range(0, 50, 10)]
    assert judge(sightings, rules, DAY + timedelta(minutes=40)).triggers == (Trigger.SIGHTINGS,)
    assert judge(sightings[:4], rules, DAY + timedelta(minutes=40)).triggers == ()


@pytest.mark.parametrize(
    ("local", "night"),
    [
        ("21:59", False),
        ("22:00", True),
        ("23:59", True),
        ("00:00", True),
        ("05:59", True),
        ("06:00", False),
        ("12:00", False),
    ],
)
def test_night_crosses_midnight_in_community_time(local: str, night: bool) -> None:
    hour, minute = map(int, local.split(":"))
    # Shanghai is UTC+8: the local time's UTC instant.
    at = datetime(2026, 12, 1, hour, minute, tzinfo=UTC) - timedelta(hours=8)
    assert is_night(at, time(22), time(6), "Asia/Shanghai") is night


def test_a_night_within_one_day_and_no_night() -> None:
    at = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)  # 01:30 UTC
    assert is_night(at, time(1), time(5), "UTC")
    assert not is_night(at, time(2), time(5), "UTC")
    assert not is_night(at, time(0), time(0), "UTC")  # start == end: no night
    with pytest.raises(ValueError):
        is_night(datetime(2026, 12, 1, 1, 30), time(1), time(5), "UTC")  # naive


# Summary ---------------------------------------------------------------------------------------


def test_summary_counts_times_and_doors_since_the_first_in_community_time() -> None:
    evening = datetime(2026, 12, 1, 13, 40, tzinfo=UTC)  # 21:40 in Shanghai
    sightings = [
        Sighting(evening + timedelta(minutes=20), "ap_2"),
        Sighting(evening, "ap_1"),
        Sighting(evening + timedelta(minutes=5), "ap_1"),
    ]
    assert summary(sightings, "Asia/Shanghai") == (
        "Unknown person seen 3 times at 2 doors since 21:40"
    )
    assert summary(sightings[1:2], "Asia/Shanghai") == (
        "Unknown person seen once at 1 door since 21:40"
    )


def test_summary_names_the_day_when_it_started_on_another() -> None:
    evening = datetime(2026, 12, 1, 13, 40, tzinfo=UTC)  # 21:40 in Shanghai
    sightings = [Sighting(evening, "ap_1"), Sighting(evening + timedelta(hours=3), "ap_1")]
    assert summary(sightings, "Asia/Shanghai") == (
        "Unknown person seen 2 times at 1 door since 2026-12-01 21:40"
    )
    with pytest.raises(ValueError):
        summary([], "Asia/Shanghai")
