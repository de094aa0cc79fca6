"""The in-memory 1:N gallery."""

from __future__ import annotations

import numpy as np
import pytest

from gatekeeper.gallery import Gallery


def unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_empty_gallery_matches_no_one() -> None:
    assert Gallery().search(np.zeros(128), tolerance=0.5, margin=0.05).reason == "empty"


def test_search_matches_brute_force_and_respects_tolerance_and_margin() -> None:
    rng = np.random.default_rng(7)
    gallery = Gallery(capacity=4)  # grows while filling
    vectors = {}
    for i in range(500):
        vectors[f"t{i}"] = (f"p{i % 250}", unit(rng))
        gallery.add(f"t{i}", *vectors[f"t{i}"])
    assert len(gallery) == 500
    target_id, (person, vector) = "t123", vectors["t123"]
    probe = vector + 0.01 * unit(rng)
    match = gallery.search(probe, tolerance=0.5, margin=0.05)
    brute = {tid: float(np.linalg.norm(v - probe)) for tid, (_p, v) in vectors.items()}
    assert match.template_id == target_id and match.person_id == person
    assert match.distance == pytest.approx(brute[target_id], abs=1e-4)
    others = [d for tid, d in brute.items() if vectors[tid][0] != person]
    assert match.second_distance == pytest.approx(min(others), abs=1e-4)
    far = gallery.search(unit(rng), tolerance=0.5, margin=0.05)
    assert far.person_id is None and far.reason == "too_far"


def test_ambiguous_between_two_people() -> None:
    rng = np.random.default_rng(1)
    base = unit(rng)
    gallery = Gallery()
    gallery.add("a", "alice", base)
    gallery.add("b", "bella", base + 0.02 * unit(rng))
    match = gallery.search(base, tolerance=0.5, margin=0.06)
    assert match.person_id is None and match.reason == "ambiguous"
    # Two templates of the SAME person never make it ambiguous.
    gallery.remove("b")
    gallery.add("a2", "alice", base + 0.02 * unit(rng))
    assert gallery.search(base, tolerance=0.5, margin=0.06).person_id == "alice"


def test_remove_keeps_the_rest_searchable() -> None:
    rng = np.random.default_rng(3)
    gallery = Gallery()
    vectors = [unit(rng) for _ in range(10)]
    for i, vector in enumerate(vectors):
        gallery.add(f"t{i}", f"p{i}", vector)
    assert gallery.remove("t0") and not gallery.remove("t0")
    assert "t0" not in gallery and len(gallery) == 9
    assert gallery.search(vectors[0], tolerance=0.5, margin=0.0).person_id is None
    for i in range(1, 10):
        assert gallery.search(vectors[i], tolerance=0.1, margin=0.0).person_id == f"p{i}"


def test_nearest_other_skips_the_persons_own_templates() -> None:
    rng = np.random.default_rng(5)
    base, other = unit(rng), unit(rng)
    bella = base + 0.05 * unit(rng)
    gallery = Gallery()
    assert gallery.nearest_other(base, "alice") is None
    gallery.add("a1", "alice", base)
    assert gallery.nearest_other(base, "alice") is None  # only her own face
    gallery.add("b1", "bella", bella)
    gallery.add("c1", "carol", other)
    nearest = gallery.nearest_other(base, "alice")
    assert nearest.person_id == "bella" and nearest.template_id == "b1"
    assert nearest.distance == pytest.approx(float(np.linalg.norm(bella - base)), abs=1e-4)
    # A new person (no id yet) is compared with everyone.
    assert gallery.nearest_other(base, None).person_id == "alice"
    assert gallery.nearest_other(other, "alice").person_id == "carol"
