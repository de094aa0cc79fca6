"""flask rotate-data-key on a real database: real faces enrolled under the old DATA_KEY are
still recognised at the door by an app that holds only the new key; passes, ID documents,
secrets and face crops move too; a run stopped half-way goes on; a row no key opens stops
the run with nothing of its batch changed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import time_machine
from cryptography.fernet import Fernet
from flask import Flask
from PIL import Image
from sqlalchemy import select

from gatekeeper import faces as engine
from gatekeeper.vocabulary import PersonRole
from server import create_app
from server.access import snapshots
from server.cli.datakey import ENCRYPTED
from server.core import crypto
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    AuditEntry,
    Community,
    FaceTemplate,
    Person,
    SigningKey,
)
from server.passes import keys as pass_keys
from server.people.galleries import GalleryCache, GalleryFiles, record_change
from server.settings import Settings, SettingsError
from tests import factories
from tests.conftest import TEST_DATA_KEY, Recorder, app_environment
from tests.factories import Api
from tests.fetch_test_data import test_image as photo_path
from tests.support.faces import enrol, frame, verify_face
from tests.support.passes import NOW, pass_site

SECRET = "rotation-door-secret"
NEW_KEY = Fernet.generate_key().decode()
NEW_ID = crypto.key_id(NEW_KEY)


@contextmanager
def other_app(workdir: Path, database_url: str, **keys: str) -> Iterator[Flask]:
    """A second process on the same database and instance folder, with other keys."""
    app = create_app(app_environment(workdir, database_url, **keys))
    app.extensions["mqtt_publisher"] = Recorder()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def rotating(workdir: Path, database_url: str):
    """Step 3 of the procedure: DATA_KEY is the new key, the old one retired."""
    return other_app(workdir, database_url, DATA_KEY=NEW_KEY, DATA_KEYS_RETIRED=TEST_DATA_KEY)


def only_new(workdir: Path, database_url: str):
    """Step 5: the old key dropped."""
    return other_app(workdir, database_url, DATA_KEY=NEW_KEY)


def cli(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def tokens(app: Flask) -> list[bytes]:
    """Every encrypted value in the database."""
    with app.app_context():
        found = []
        for model, column in ENCRYPTED:
            found += [
                bytes(value)
                for value in db.session.scalars(select(getattr(model, column)))
                if value is not None
            ]
        db.session.remove()
    return found


@pytest.fixture
def faces_site(app: Flask) -> dict[str, str]:
    """Two residents enrolled with real photos under the old key (one of them as a token
    from before key ids), an ID document, and a door that keeps face crops."""
    with app.app_context():
        w = factories.world(door_secret=SECRET)
        db.session.get(AccessPoint, w.door_a.id).requires_depth = False
        db.session.get(Community, w.a.id).settings = {
            "keep_snapshots": True,
            "snapshot_retention_days": 30,
        }
        obama = factories.person(w.a, "奥巴马")
        factories.membership(obama, PersonRole.RESIDENT, unit_of=w.unit_a)
        enrol(w.a.id, obama.id, "obama.jpg")
        biden = factories.person(w.a, "拜登")
        factories.membership(biden, PersonRole.RESIDENT, unit_of=w.unit_a)
        result = engine.assess_enrolment_photo(photo_path("biden.jpg").read_bytes())
        legacy = FaceTemplate(
            community_id=w.a.id,
            person_id=biden.id,
            model="test",
            # Written before key ids: a bare Fernet token.
            template_encrypted=Fernet(TEST_DATA_KEY).encrypt(
                engine.template_to_bytes(result.template)
            ),
        )
        db.session.add(legacy)
        db.session.flush()
        record_change(w.a.id, legacy.id, biden.id, "add")
        obama.id_document_encrypted = crypto.encrypt_text("110101199003074514")
        db.session.commit()
        ids = {"a": w.a.id, "credential": f"{w.device_a.id}.{SECRET}", "obama": obama.id}
        db.session.remove()
    return ids


def test_a_key_rotation_leaves_every_face_still_recognised_at_the_door(
    app, client, faces_site, published, workdir: Path, database_url: str
) -> None:
    credential = faces_site["credential"]
    before = verify_face(client, credential, frame("obama2.jpg"))
    assert (before["decision"], before["reason"]) == ("grant", "resident")
    assert verify_face(client, credential, frame("biden.jpg"))["reason"] == "resident"
    with app.app_context():
        event = db.session.get(AccessEvent, before["event_id"])
        crop_path = snapshots._root() / event.snapshot_path
        crop = snapshots.load(event)
    assert crop_path.read_bytes().startswith(b"k" + crypto.key_id(TEST_DATA_KEY).encode())
    old = tokens(app)
    assert len(old) == 3 and not any(t.startswith(f"k{NEW_ID}:".encode()) for t in old)

    with rotating(workdir, database_url) as rotator:
        # While rotating, the processes with both keys read old and new rows alike.
        assert verify_face(rotator.test_client(), credential, frame("obama3.jpg"))["reason"] == (
            "resident"
        )
        dry = cli(rotator, "rotate-data-key", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "face_templates.template_encrypted: 2 to re-encrypt" in dry.output
        assert "people.id_document_encrypted: 1 to re-encrypt" in dry.output
        assert "snapshots (face crop files): 2 to re-encrypt" in dry.output
        assert tokens(app) == old  # a dry run changes nothing

        done = cli(rotator, "rotate-data-key")
        assert done.exit_code == 0, done.output
        assert "face_templates.template_encrypted: 2 re-encrypted, 0 left" in done.output
        assert "snapshots (face crop files): 2 re-encrypted, 0 left" in done.output
        assert f"Everything is under key {NEW_ID}" in done.output
        again = cli(rotator, "rotate-data-key")  # safe to run twice: nothing left to do
        assert again.exit_code == 0 and "0 re-encrypted, 0 left" in again.output
        assert " 1 re-encrypted" not in again.output and " 2 re-encrypted" not in again.output

    assert all(t.startswith(f"k{NEW_ID}:".encode()) for t in tokens(app))
    assert crop_path.read_bytes().startswith(f"k{NEW_ID}:".encode())
    # The process still on the old key alone can no longer read them: the data really moved.
    with app.app_context(), pytest.raises(crypto.DecryptionError):
        snapshots.load(db.session.get(AccessEvent, before["event_id"]))

    with only_new(workdir, database_url) as restarted:
        door = restarted.test_client()
        for photo, name in (("obama2.jpg", "奥*马"), ("biden.jpg", "拜*")):
            answer = verify_face(door, credential, frame(photo))
            assert (answer["decision"], answer["reason"]) == ("grant", "resident"), answer
            assert answer["subject"]["display_name"] == name
        with restarted.app_context():
            event = db.session.get(AccessEvent, before["event_id"])
            assert snapshots.load(event) == crop
            Image.open(io.BytesIO(snapshots.load(event))).verify()
            obama = db.session.get(Person, faces_site["obama"])
            assert crypto.decrypt_text(obama.id_document_encrypted) == "110101199003074514"
            audit = db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "data_key.rotate")
            ).all()
            assert [entry.details["key_id"] for entry in audit] == [NEW_ID, NEW_ID]
            assert audit[0].details["re_encrypted"] == 5  # 2 templates, the document, 2 crops
            assert NEW_KEY not in str(audit[0].details)


def test_an_interrupted_rotation_goes_on_where_it_stopped(
    app, faces_site, workdir: Path, database_url: str
) -> None:
    with app.app_context():
        person = factories.person(db.session.get(Community, faces_site["a"]), "张三")
        for photo in ("obama.jpg", "obama2.jpg", "obama3.jpg"):
            enrol(faces_site["a"], person.id, photo)
        db.session.commit()
    assert len(tokens(app)) == 6  # five templates and the document
    with rotating(workdir, database_url) as rotator:
        first = cli(rotator, "rotate-data-key", "--batch-size", "2", "--max-batches", "2")
        assert first.exit_code == 0, first.output
        assert "face_templates.template_encrypted: 4 re-encrypted, 1 left" in first.output
        assert "people.id_document_encrypted: 0 re-encrypted, 1 left" in first.output
        assert "Key " + NEW_ID + ": 2 left; run it again" in first.output
        moved = [t for t in tokens(app) if t.startswith(f"k{NEW_ID}:".encode())]
        assert len(moved) == 4
        second = cli(rotator, "rotate-data-key", "--batch-size", "2")
        assert second.exit_code == 0, second.output
        assert "face_templates.template_encrypted: 1 re-encrypted, 0 left" in second.output
        assert "people.id_document_encrypted: 1 re-encrypted, 0 left" in second.output
        # The four moved before were not touched again (same tokens).
        assert set(moved) <= set(tokens(app))
    assert all(t.startswith(f"k{NEW_ID}:".encode()) for t in tokens(app))


def test_a_row_no_key_opens_stops_the_run_and_its_batch_is_kept_as_it_was(
    app, faces_site, workdir: Path, database_url: str
) -> None:
    stranger_key = Fernet.generate_key().decode()
    with app.app_context():
        person = factories.person(db.session.get(Community, faces_site["a"]), "李四")
        bad = enrol(faces_site["a"], person.id, "obama2.jpg")
        db.session.get(FaceTemplate, bad).template_encrypted = crypto.KeyRing.of(
            stranger_key
        ).encrypt(b"\0" * 16)
        db.session.commit()
    old = sorted(tokens(app))
    with rotating(workdir, database_url) as rotator:
        failed = cli(rotator, "rotate-data-key")
        assert failed.exit_code == 1
        assert f"face_templates.template_encrypted of row {bad}" in failed.output
        assert crypto.key_id(stranger_key) in failed.output and "DATA_KEYS_RETIRED" in failed.output
        assert "Traceback" not in failed.output
        assert sorted(tokens(app)) == old  # the whole batch rolled back
        with rotator.app_context():
            assert db.session.scalar(select(AuditEntry.id)) is None
        with rotator.app_context():
            db.session.delete(db.session.get(FaceTemplate, bad))
            db.session.commit()
        assert cli(rotator, "rotate-data-key").exit_code == 0


@time_machine.travel(NOW, tick=False)
def test_a_pass_issued_before_the_rotation_opens_after_it(
    app, client, workdir: Path, database_url: str
) -> None:
    site = pass_site(app)
    issued = Api(client, "resident_a").post("/passes", json={"guest_name": "王小二"})
    assert issued.status_code == 201, issued.json
    with app.app_context():
        (key_id,) = db.session.scalars(select(SigningKey.key_id)).all()
    with rotating(workdir, database_url) as rotator:
        assert cli(rotator, "rotate-data-key").exit_code == 0
    with only_new(workdir, database_url) as restarted:
        door = restarted.test_client()
        answer = door.post(
            "/api/v1/verify/qr",
            json={"token": issued.json["token"]},
            headers={"Authorization": f"Bearer {site.door_credential}"},
        )
        assert (answer.json["decision"], answer.json["reason"]) == ("grant", "visitor_pass")
        # The re-encrypted private key still signs: a new pass, by the same key.
        second = Api(door, "resident_a").post("/passes", json={"guest_name": "王小三"})
        assert second.status_code == 201, second.json
        with restarted.app_context():
            assert db.session.scalars(select(SigningKey.key_id)).all() == [key_id]
            assert pass_keys.signing_key()[0] == key_id
        answer = door.post(
            "/api/v1/verify/qr",
            json={"token": second.json["token"]},
            headers={"Authorization": f"Bearer {site.door_credential}"},
        )
        assert answer.json["decision"] == "grant", answer.json


def test_data_key_new_prints_a_usable_key_and_status_names_ids_only(
    workdir: Path, database_url: str
) -> None:
    with rotating(workdir, database_url) as rotator:
        made = cli(rotator, "data-key", "new")
        assert made.exit_code == 0
        key = made.output.splitlines()[0]
        assert crypto.KeyRing.of(key).decrypt(crypto.KeyRing.of(key).encrypt(b"x")) == b"x"
        shown = cli(rotator, "data-key", "status")
        assert shown.exit_code == 0
        assert f"DATA_KEY: {NEW_ID}" in shown.output
        assert f"DATA_KEYS_RETIRED: {crypto.key_id(TEST_DATA_KEY)}" in shown.output
        assert NEW_KEY not in shown.output and TEST_DATA_KEY not in shown.output


@time_machine.travel(NOW, tick=False)
def test_a_courier_code_opens_while_the_old_key_is_retired_and_voids_once_dropped(
    app, client, workdir: Path, database_url: str
) -> None:
    site = pass_site(app)
    with app.app_context():
        db.session.get(AccessPoint, site.door).has_keypad = True
        db.session.commit()
    codes = []
    for _ in range(2):
        made = Api(client, "resident_a").post("/courier-codes", json={"access_point_id": site.door})
        assert made.status_code == 201, made.json
        codes.append(made.json["pin"])
    headers = {"Authorization": f"Bearer {site.door_credential}"}

    def typed(door, digits: str) -> str:
        answer = door.post("/api/v1/verify/pin", json={"pin": digits}, headers=headers)
        assert answer.status_code == 200, answer.json
        return answer.json["reason"]

    with rotating(workdir, database_url) as rotator:
        assert typed(rotator.test_client(), codes[0]) == "courier_code"
    with only_new(workdir, database_url) as restarted:
        assert typed(restarted.test_client(), codes[1]) == "pin_invalid"


def test_gallery_files_of_the_retired_key_are_shared_not_deleted(
    app, faces_site, workdir: Path, database_url: str, tmp_path: Path
) -> None:
    """A process with the new key and one still on the old key share one machine's gallery
    files during the rolling restart; once the old key is dropped, its files are refused
    and rebuilt from the database."""
    with rotating(workdir, database_url) as rotator:
        new, old = crypto.derived_keys("face gallery files", rotator)
    with only_new(workdir, database_url) as restarted:
        assert crypto.derived_keys("face gallery files", restarted) == [new]
    with app.app_context():
        assert crypto.derived_keys("face gallery files") == [old]
        folder = tmp_path / "galleries"
        first = GalleryCache(files=GalleryFiles(folder, old))
        first.gallery(faces_site["a"])
        assert first.stats().files_written == 1
        both = GalleryCache(files=GalleryFiles(folder, new, (old,)))
        both.gallery(faces_site["a"])
        assert both.stats().loads_from_file == 1 and both.stats().files_written == 0
        dropped = GalleryCache(files=GalleryFiles(folder, new))
        dropped.gallery(faces_site["a"])
        assert dropped.stats().loads_from_file == 0 and dropped.stats().files_written == 1
        db.session.remove()


def test_every_encrypted_column_is_rotated() -> None:
    """A new ``*_encrypted`` column must join ``ENCRYPTED`` (or the rotation would leave it
    under the old key, unreadable once that key is dropped)."""
    columns = {
        (table.name, column.name)
        for table in db.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_encrypted")
    }
    assert columns == {(model.__tablename__, column) for model, column in ENCRYPTED}


def test_backups_never_hold_the_keys(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    unit = (root / "docs" / "deploy" / "gatekeeper-backup.service").read_text()
    assert "EnvironmentFile" not in unit and "/etc/gatekeeper" not in unit
    assert "/var/lib/gatekeeper" not in unit  # INSTANCE_DIR
    [command] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert "pg_dump -Fc -d gatekeeper" in command
    env = (root / "docs" / "deploy" / "gatekeeper.env").read_text()
    assert "INSTANCE_DIR=/var/lib/gatekeeper" in env and "/var/backups" not in env
    deploy = (root / "docs" / "deploy.md").read_text()
    section = deploy[deploy.index("## Rotating DATA_KEY") :].split("\n## ", 1)[0]
    for step in ("data-key new", "DATA_KEYS_RETIRED", "rotate-data-key --dry-run", "Drop"):
        assert step in section, step
    # A development key generated into the instance folder is never taken in production.
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "data_key").write_text(Fernet.generate_key().decode() + "\n")
    environ = {
        "GK_ENV": "production",
        "INSTANCE_DIR": str(instance),
        "SECRET_KEY": "s" * 40,
        "DATABASE_URL": "postgresql://gk@127.0.0.1/gk",
    }
    with pytest.raises(SettingsError, match="DATA_KEY: is required"):
        Settings.from_env(environ)
    with pytest.raises(SettingsError, match="DATA_KEYS_RETIRED: key 2 is too short") as error:
        Settings.from_env({**environ, "DATA_KEY": NEW_KEY, "DATA_KEYS_RETIRED": f"{NEW_KEY},x1"})
    assert "x1" not in str(error.value)
    settings = Settings.from_env(
        {**environ, "DATA_KEY": NEW_KEY, "DATA_KEYS_RETIRED": f" {TEST_DATA_KEY} ,"}
    )
    assert settings.data_keys_retired == (TEST_DATA_KEY,)
