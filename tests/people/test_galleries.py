"""Galleries in several processes stay in step with enrolments and removals."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from gatekeeper.faces import template_to_bytes
from server.core import crypto
from server.core.scope import Scope
from server.extensions import db
from server.models import FaceGalleryChange, FaceTemplate
from server.people.faces import delete_face
from server.people.galleries import GalleryCache, record_change
from server.people.service import erase_biometrics
from tests import factories


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _enrol(community_id: str, person_id: str, seed: int) -> str:
    row = FaceTemplate(
        community_id=community_id,
        person_id=person_id,
        model="test",
        template_encrypted=crypto.encrypt(template_to_bytes(_vector(seed))),
    )
    db.session.add(row)
    db.session.flush()
    record_change(community_id, row.id, person_id, "add")
    db.session.commit()
    return row.id


def test_two_processes_follow_enrolments_and_removals(app, ctx) -> None:
    w = factories.world()
    alice = factories.person(w.a, "Alice")
    bella = factories.person(w.a, "Bella")
    first, second = GalleryCache(), GalleryCache()  # two web workers
    assert len(first.gallery(w.a.id)) == 0

    kept = _enrol(w.a.id, alice.id, 1)
    assert len(second.gallery(w.a.id)) == 1  # loads fresh
    removed = _enrol(w.a.id, bella.id, 2)
    for cache in (first, second):
        match = cache.gallery(w.a.id).search(_vector(2), tolerance=0.3, margin=0.0)
        assert match.person_id == bella.id
    delete_face(Scope(w.admin), removed)
    db.session.commit()
    for cache in (first, second):
        gallery = cache.gallery(w.a.id)
        assert removed not in gallery and kept in gallery
        assert gallery.search(_vector(2), tolerance=0.3, margin=0.0).person_id is None
    erase_biometrics(alice)
    db.session.commit()
    assert len(first.gallery(w.a.id)) == 0
    # Community B is untouched and separate.
    assert len(first.gallery(w.b.id)) == 0
    versions = [
        c.version
        for c in db.session.scalars(
            select(FaceGalleryChange)
            .where(FaceGalleryChange.community_id == w.a.id)
            .order_by(FaceGalleryChange.id)
        )
    ]
    assert versions == [1, 2, 3, 4]
