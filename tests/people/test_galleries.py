"""Galleries stay in step with enrolments and removals, within a memory budget, and are
shared between processes through signed files."""

from __future__ import annotations

import json
import os
import selectors
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from gatekeeper.faces import template_to_bytes
from server.core import crypto
from server.core.scope import Scope
from server.extensions import db
from server.models import FaceGalleryChange, FaceTemplate
from server.people.faces import delete_face
from server.people.galleries import GalleryCache, GalleryFiles, galleries, record_change
from server.people.service import erase_biometrics
from tests import factories
from tests.conftest import app_environment


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


# Bounded: the least recently used galleries go past the budget ------------------------------


def _community_with_faces(count: int, seed: int) -> tuple[str, dict[str, np.ndarray]]:
    """A community whose ``count`` people have a face each: its id, person id -> face."""
    community = factories.community()
    faces = {}
    for i in range(count):
        person = factories.person(community)
        _enrol(community.id, person.id, seed * 1000 + i)
        faces[person.id] = _vector(seed * 1000 + i)
    return community.id, faces


def _matches(cache: GalleryCache, community_id: str, faces: dict[str, np.ndarray]) -> None:
    for person_id, face in faces.items():
        assert cache.gallery(community_id).search(face, tolerance=0.3, margin=0.0).person_id == (
            person_id
        )


def test_least_recently_used_galleries_go_past_the_budget(app, ctx) -> None:
    communities = [_community_with_faces(6, seed) for seed in range(1, 5)]
    size = GalleryCache().gallery(communities[0][0]).nbytes
    cache = GalleryCache(budget_bytes=int(size * 2.5))  # room for two
    first, second, third, fourth = (cid for cid, _faces in communities)
    held = cache.gallery(first)
    cache.gallery(second)
    cache.gallery(first)  # used again: second is now the least recent
    cache.gallery(third)
    assert first in cache and third in cache and second not in cache
    assert cache.stats().evictions == 1 and cache.stats().nbytes <= cache.budget_bytes
    cache.gallery(fourth)
    assert second not in cache and first not in cache
    # A gallery dropped from the cache still answers whoever holds it.
    assert held.search(communities[0][1][next(iter(communities[0][1]))], tolerance=0.3, margin=0)
    for cid, faces in communities:  # each comes back whole
        _matches(cache, cid, faces)
    stats = cache.stats()
    assert stats.communities == 2 and stats.loads_from_database == 4 + 4  # every one came back
    assert stats.nbytes <= cache.budget_bytes


def test_a_gallery_larger_than_the_budget_stays_while_used(app, ctx) -> None:
    (big, faces), (small, _) = _community_with_faces(5, 7), _community_with_faces(1, 8)
    cache = GalleryCache(budget_bytes=1)
    _matches(cache, big, faces)
    assert cache.stats().loads_from_database == 1  # not reloaded for every search
    cache.gallery(small)
    assert big not in cache and small in cache


def test_an_evicted_gallery_comes_back_with_the_changes_made_meanwhile(app, ctx) -> None:
    (cid, faces), (other, _) = _community_with_faces(3, 9), _community_with_faces(1, 10)
    size = GalleryCache().gallery(cid).nbytes
    cache = GalleryCache(budget_bytes=size + 1024)  # one of them at a time
    _matches(cache, cid, faces)
    cache.gallery(other)
    assert cid not in cache
    gone = next(iter(faces))
    template = db.session.scalar(select(FaceTemplate).where(FaceTemplate.person_id == gone))
    record_change(cid, template.id, gone, "remove")
    db.session.delete(template)
    db.session.commit()
    newcomer = factories.person(cid)
    _enrol(cid, newcomer.id, 9999)
    gallery = cache.gallery(cid)
    assert gallery.search(faces.pop(gone), tolerance=0.3, margin=0.0).person_id is None
    _matches(cache, cid, {**faces, newcomer.id: _vector(9999)})


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "shared-files"])
def test_eviction_under_concurrent_searches_and_enrolments(app, ctx, tmp_path, shared) -> None:
    """Four threads search five communities in a cache with room for one gallery, while
    enrolments and a removal commit: every search finds the right person (or, for the
    removed face, nobody once the removal is committed)."""
    communities = dict(_community_with_faces(4, seed) for seed in range(20, 25))
    target = next(iter(communities))
    size = GalleryCache().gallery(target).nbytes
    files = GalleryFiles(tmp_path / "galleries", crypto.derived_key("test")) if shared else None
    cache = GalleryCache(budget_bytes=size + 1024, files=files)
    known = [(cid, pid, face) for cid, faces in communities.items() for pid, face in faces.items()]
    removed_pid, removed_face = known.pop(0)[1:]
    errors: list[str] = []
    searches = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def searcher(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            with lock:
                cid, pid, face = known[int(rng.integers(len(known)))]
            with app.app_context():
                found = cache.gallery(cid).search(face, tolerance=0.3, margin=0.0).person_id
                db.session.remove()
            with lock:
                searches[0] += 1
                if found != pid:
                    errors.append(f"{cid}: {pid} found as {found}")

    threads = [threading.Thread(target=searcher, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(6):
            newcomer = factories.person(target)
            _enrol(target, newcomer.id, 5000 + i)
            with lock:
                known.append((target, newcomer.id, _vector(5000 + i)))
        template = db.session.scalar(
            select(FaceTemplate).where(FaceTemplate.person_id == removed_pid)
        )
        record_change(target, template.id, removed_pid, "remove")
        db.session.delete(template)
        db.session.commit()
        deadline = time.monotonic() + 30
        while searches[0] < 300 and time.monotonic() < deadline:
            stop.wait(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors[:5]
    assert searches[0] >= 300 and cache.stats().evictions > 10
    assert cache.gallery(target).search(removed_face, tolerance=0.3, margin=0.0).person_id is None
    if shared:
        assert cache.stats().loads_from_file > 0


# Shared: one decrypted file per community version, mapped by every process ------------------


def _files(tmp_path: Path) -> GalleryFiles:
    return GalleryFiles(tmp_path / "galleries", crypto.derived_key("face gallery files"))


def test_a_second_cache_maps_the_file_the_first_wrote(app, ctx, tmp_path) -> None:
    cid, faces = _community_with_faces(5, 30)
    first, second = GalleryCache(files=_files(tmp_path)), GalleryCache(files=_files(tmp_path))
    _matches(first, cid, faces)
    _matches(second, cid, faces)
    assert first.stats().loads_from_database == 1 and first.stats().files_written == 1
    assert second.stats().loads_from_database == 0 and second.stats().loads_from_file == 1
    folder = tmp_path / "galleries" / cid
    [path] = folder.glob("*.gallery")
    assert path.name == "5.gallery"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    # The base of both is the same read-only mapping of that file, not a copy.
    base = second.gallery(cid).base
    assert not base.matrix.flags.writeable and not base.matrix.flags.owndata


def test_a_file_changed_signed_with_another_key_or_of_another_history_is_refused(
    app, ctx, tmp_path
) -> None:
    cid, faces = _community_with_faces(3, 31)
    GalleryCache(files=_files(tmp_path)).gallery(cid)
    [path] = (tmp_path / "galleries" / cid).glob("*.gallery")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one template
    path.write_bytes(bytes(data))
    cache = GalleryCache(files=_files(tmp_path))
    _matches(cache, cid, faces)  # rebuilt from the database, written again
    assert cache.stats().loads_from_file == 0 and cache.stats().files_written == 1

    path.chmod(0o644)  # readable by others: not trusted, written again 0600
    cache = GalleryCache(files=_files(tmp_path))
    _matches(cache, cid, faces)
    assert cache.stats().loads_from_file == 0 and stat.S_IMODE(path.stat().st_mode) == 0o600

    other_key = GalleryCache(files=GalleryFiles(tmp_path / "galleries", b"k" * 32))
    _matches(other_key, cid, faces)
    assert other_key.stats().loads_from_file == 0

    # A file of the same version, right content and signature, but made from another history
    # of the database (one restored, then enrolled again) is not this database's gallery.
    files = _files(tmp_path)
    files.write(cid, 3, "3:fce_other:add", GalleryCache().gallery(cid).arrays())
    cache = GalleryCache(files=_files(tmp_path))
    _matches(cache, cid, faces)
    assert cache.stats().loads_from_file == 0 and cache.stats().files_written == 1


def test_a_removal_deletes_the_files_after_its_commit(app, ctx, tmp_path) -> None:
    w = factories.world()
    alice = factories.person(w.a, "Alice")
    kept = _enrol(w.a.id, alice.id, 41)
    gone = _enrol(w.a.id, alice.id, 42)
    cache = galleries(app)
    folder = cache.files.folder(w.a.id) if cache.files else None
    assert folder is not None, "the test app shares galleries in its INSTANCE_DIR"
    cache.gallery(w.a.id)
    assert [p.name for p in folder.glob("*.gallery")] == ["2.gallery"]
    delete_face(Scope(w.admin), gone)
    db.session.rollback()  # not removed: the file stays
    assert [p.name for p in folder.glob("*.gallery")] == ["2.gallery"]
    delete_face(Scope(w.admin), gone)
    db.session.commit()
    assert list(folder.glob("*.gallery")) == []
    gallery = cache.gallery(w.a.id)
    assert gone not in gallery and kept in gallery


CHILD = """
import json, sys
import numpy as np
from server import create_app
from server.extensions import db
from server.people.galleries import galleries

app = create_app()
for line in sys.stdin:
    question = json.loads(line)
    with app.app_context():
        gallery = galleries().gallery(question["community"])
        face = np.array(question["face"], dtype=np.float32)
        found = gallery.search(face, tolerance=0.3, margin=0.0).person_id
        stats = galleries().stats()
        db.session.remove()
    answer = {"found": found, "file": stats.loads_from_file, "database": stats.loads_from_database}
    print(json.dumps(answer), flush=True)
"""


def _ask(child: subprocess.Popen, community_id: str, face: np.ndarray) -> dict:
    child.stdin.write(json.dumps({"community": community_id, "face": face.tolist()}) + "\n")
    child.stdin.flush()
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=60), "the second process did not answer within 60 s"
    return json.loads(child.stdout.readline())


def test_two_processes_share_one_file_and_stay_in_step(app, ctx, workdir, database_url):
    """A second app in its own process maps the file this one wrote, follows an enrolment
    through the change log, and forgets a removed face; the removal deleted the file."""
    w = factories.world()
    alice, bella, carol = (factories.person(w.a, name) for name in ("Alice", "Bella", "Carol"))
    _enrol(w.a.id, alice.id, 51)
    bellas = _enrol(w.a.id, bella.id, 52)
    here = galleries(app)  # the app's own: its removals delete files, in INSTANCE_DIR
    written = here.stats().files_written
    here.gallery(w.a.id)
    assert here.stats().files_written == written + 1
    directory = here.files.directory
    environment = {**os.environ, **app_environment(workdir, database_url)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert _ask(child, w.a.id, _vector(51)) == {"found": alice.id, "file": 1, "database": 0}
        _enrol(w.a.id, carol.id, 53)
        assert _ask(child, w.a.id, _vector(53)) == {"found": carol.id, "file": 1, "database": 0}
        assert here.gallery(w.a.id).search(_vector(53), tolerance=0.3, margin=0).person_id == (
            carol.id
        )
        delete_face(Scope(w.admin), bellas)
        db.session.commit()
        assert list((directory / w.a.id).glob("*.gallery")) == []
        assert _ask(child, w.a.id, _vector(52))["found"] is None
        assert here.gallery(w.a.id).search(_vector(52), tolerance=0.3, margin=0).person_id is None
    finally:
        child.stdin.close()
        child.wait(timeout=30)
