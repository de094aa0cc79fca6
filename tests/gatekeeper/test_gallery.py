"""The in-memory 1:N gallery."""

from __future__ import annotations

import numpy as np
import pytest

from gatekeeper.gallery import Gallery, GalleryArrays


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


def _brute(live: dict[str, tuple[str, np.ndarray]], probe: np.ndarray) -> tuple[str, str, float]:
    """(template id, person id, distance) of the closest live template."""
    best = min(live, key=lambda tid: float(np.linalg.norm(live[tid][1] - probe)))
    return best, live[best][0], float(np.linalg.norm(live[best][1] - probe))


def test_a_frozen_base_with_changes_searches_like_one_list() -> None:
    """A read-only base (as a shared memory map is), rows removed from it, replaced in it
    and added after it: search, nearest_other, len and contains see only the live rows."""
    rng = np.random.default_rng(11)
    live = {f"t{i:03d}": (f"p{i % 40}", unit(rng)) for i in range(120)}
    ids = list(live)
    rng.shuffle(ids)  # built in any order, kept sorted by template id
    base = GalleryArrays.build(ids, [live[t][0] for t in ids], np.stack([live[t][1] for t in ids]))
    for array in (base.matrix, base.norms, base.codes, base.template_ids, base.person_ids):
        array.flags.writeable = False  # the gallery must never write its base
    gallery = Gallery(capacity=2, base=base)
    assert len(gallery) == 120 and "t005" in gallery and "nope" not in gallery
    removed = {}
    for gone in ("t000", "t007", "t119"):
        assert gallery.remove(gone) and not gallery.remove(gone)
        removed[gone] = live.pop(gone)
    live["t010"] = ("p99", unit(rng))  # replaced: a new person and a new face
    gallery.add("t010", *live["t010"])
    for i in range(120, 130):  # the tail, a few people from the base among them
        live[f"t{i}"] = (f"p{i % 45}", unit(rng))
        gallery.add(f"t{i}", *live[f"t{i}"])
    gallery.remove("t125")
    del live["t125"]
    assert len(gallery) == len(live) and "t007" not in gallery and "t010" in gallery

    for target in ("t010", "t050", "t127", "t001"):
        probe = live[target][1] + 0.01 * unit(rng)
        match = gallery.search(probe, tolerance=0.5, margin=0.0)
        assert (match.template_id, match.person_id) == (target, live[target][0])
        others = [
            float(np.linalg.norm(v - probe)) for p, v in live.values() if p != live[target][0]
        ]
        assert match.second_distance == pytest.approx(min(others), abs=1e-4)
        nearest = gallery.nearest_other(probe, live[target][0])
        expected = _brute({t: pv for t, pv in live.items() if pv[0] != live[target][0]}, probe)
        assert (nearest.template_id, nearest.person_id) == expected[:2]
        assert nearest.distance == pytest.approx(expected[2], abs=1e-4)
    for _person, vector in removed.values():
        assert gallery.search(vector, tolerance=0.05, margin=0.0).person_id is None

    folded = Gallery(base=gallery.arrays())
    assert len(folded) == len(live) and folded.changes_since_base == 0
    for target, (person, vector) in live.items():
        assert folded.search(vector, tolerance=0.01, margin=0.0).person_id == person, target


def test_removed_rows_are_no_second_person() -> None:
    rng = np.random.default_rng(12)
    alice, bella = unit(rng), unit(rng)
    gallery = Gallery(
        base=GalleryArrays.build(["a", "b"], ["alice", "bella"], np.stack([alice, bella]))
    )
    gallery.remove("b")
    match = gallery.search(alice, tolerance=0.5, margin=0.06)
    assert match.person_id == "alice" and match.second_distance is None
    assert gallery.nearest_other(alice, "alice") is None
    gallery.remove("a")
    assert len(gallery) == 0
    assert gallery.search(alice, tolerance=0.5, margin=0.06).reason == "empty"


def test_nbytes_counts_what_the_gallery_holds() -> None:
    rng = np.random.default_rng(13)
    rows = 1000
    base = GalleryArrays.build(
        [f"fce_{i:026d}" for i in range(rows)],
        [f"per_{i:026d}" for i in range(rows)],
        np.stack([unit(rng) for _ in range(rows)]),
    )
    frozen = Gallery(base=base)
    # 512 bytes of template, a norm, a code and two 30-byte ids a row: no Python objects.
    assert rows * 580 < frozen.nbytes < rows * 600 + 4096
    grown = Gallery(capacity=rows)
    grown.add_many([(f"fce_{i:026d}", f"per_{i:026d}", unit(rng)) for i in range(rows)])
    assert grown.nbytes > frozen.nbytes * 1.3  # rows added one by one cost their objects
