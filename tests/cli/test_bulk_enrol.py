"""Bulk enrolment: ``flask enrol-csv`` with a CSV file and a photo folder."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageFilter
from sqlalchemy import select

from server.extensions import db
from server.models import AuditEntry, Consent, FaceTemplate, Lease, Person
from tests.fetch_test_data import test_image as photo_path
from tests.support.identity import make_resident_id

HEADER = "name,role,building,unit,phone,id_type,id_number,lease_start,lease_end,photo\n"
GOOD_ID = make_resident_id("330106", sequence=234)
BAD_ID = GOOD_ID[:-1] + ("0" if GOOD_ID[-1] != "0" else "1")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "obama.jpg").write_bytes(photo_path("obama.jpg").read_bytes())
    blurred = Image.open(photo_path("obama.jpg")).filter(ImageFilter.GaussianBlur(6))
    buffer = io.BytesIO()
    blurred.convert("RGB").save(buffer, "JPEG", quality=92)
    (folder / "blurred.jpg").write_bytes(buffer.getvalue())
    return folder


def _csv(tmp_path: Path, text: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(app, *args: str):
    # `flask` pushes an application context for every command; the test runner does not.
    with app.app_context():
        return app.test_cli_runner().invoke(args=["enrol-csv", *map(str, args)])


def test_enrol_csv_reports_each_failed_row(app, world, tmp_path, photos) -> None:
    csv_file = _csv(
        tmp_path,
        HEADER
        + f"王小明,owner,A1,101,13800000001,resident_id,{GOOD_ID},,,\n"  # line 2
        + f"坏号码,owner,A1,101,,resident_id,{BAD_ID},,,\n"  # line 3
        + "无此户,resident,A1,999,,,,,,\n"  # line 4
        + "张伟,tenant,a1,101,,,,2026-12-01T09:00,2027-11-30,\n"  # line 5
        + "Blurry,resident,A1,101,,,,,,blurred.jpg\n"  # line 6
        + "Barack,resident,A1,101,,,,,,obama.jpg\n"  # line 7
        + "\n"  # blank lines are skipped
        + "No Lease,tenant,A1,101,,,,,,\n"  # line 9
        + "Elsewhere,owner,B1,101,,,,,,\n",  # line 10: community B's building
    )
    result = _run(app, "--community", world.a, "--photos", photos, "--consent", csv_file)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "Created 3 of 8 people." in out
    assert "Failed rows (5):" in out
    assert "line 3, 坏号码: id_document: a resident ID number fails its check digit" in out
    assert "line 4, 无此户: unknown unit '999' in building 'A1'" in out
    assert "line 6, Blurry: photo rejected: too_blurry (The photo is too blurry; " in out
    assert "sharpness" in out
    assert "line 9, No Lease: a tenant needs lease_start and lease_end" in out
    assert "line 10, Elsewhere: unknown building 'B1'" in out
    assert GOOD_ID not in result.output and BAD_ID not in result.output
    assert "Traceback" not in result.output
    assert "Enrolling 8 rows" in result.stderr  # the progress bar, on stderr

    with app.app_context():
        names = sorted(p.name for p in db.session.scalars(select(Person)))
        assert names == sorted(["王小明", "张伟", "Barack"])
        lease = db.session.scalar(select(Lease))
        assert lease.starts_at == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
        # A date alone as the end is the last day: the lease runs to 00:00 the day after.
        assert lease.ends_at == datetime(2027, 11, 30, 16, 0, tzinfo=UTC)
        barack = db.session.scalar(select(Person).where(Person.name == "Barack"))
        [face] = db.session.scalars(select(FaceTemplate))
        assert face.person_id == barack.id
        [consent] = db.session.scalars(select(Consent))
        assert consent.person_id == barack.id and consent.purpose == "face_recognition"
        grant = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "consent.grant"))
        assert grant.actor == "cli"


def test_enrol_csv_all_good_exits_0_and_skips_photos_without_consent(
    app, world, tmp_path, photos
) -> None:
    csv_file = _csv(
        tmp_path,
        "\ufeffName,Role,Building,Unit,Photo\n"  # a BOM and capitals, as Excel writes them
        "Barack,resident,A1,101,obama.jpg\n"
        '"Li, Hua",elder,A1,101,\n',
    )
    result = _run(app, "--community", world.a, "--photos", photos, csv_file)
    assert result.exit_code == 0, result.output
    assert "Created 2 of 2 people." in result.stdout
    assert "line 2, Barack: photo skipped: no --consent" in result.stdout
    with app.app_context():
        assert sorted(p.name for p in db.session.scalars(select(Person))) == ["Barack", "Li, Hua"]
        assert db.session.scalar(select(FaceTemplate.id)) is None
        assert db.session.scalar(select(Consent.id)) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,role\nx,owner\n", "missing column(s) building, unit"),
        ("name,role,building,unit,notes\nx,owner,A1,101,hi\n", "unknown column(s) 'notes'"),
        (HEADER, "has a header but no rows"),
        ("", "is empty"),
        (b"name,role,building,unit\n\xff\xfe,owner,A1,101\n", "not UTF-8"),
    ],
)
def test_unusable_csv_exits_2(app, world, tmp_path, content, message) -> None:
    path = tmp_path / "people.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = _run(app, "--community", world.a, path)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.scalar(select(Person.id)) is None


def test_unusable_arguments_exit_2(app, world, tmp_path) -> None:
    good = _csv(tmp_path, HEADER + "x,owner,A1,101,,,,,,\n")
    missing = _run(app, "--community", world.a, tmp_path / "nope.csv")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    nowhere = _run(app, "--community", "com_nowhere", good)
    assert nowhere.exit_code == 2 and "no community with id 'com_nowhere'" in nowhere.stderr
    no_folder = _run(app, "--community", world.a, "--photos", tmp_path / "none", good)
    assert no_folder.exit_code == 2
    with app.app_context():
        assert db.session.scalar(select(Person.id)) is None


def test_photo_names_stay_inside_the_folder(app, world, tmp_path, photos) -> None:
    csv_file = _csv(
        tmp_path,
        HEADER
        + "Sneaky,resident,A1,101,,,,,,../people.csv\n"
        + "Missing,resident,A1,101,,,,,,nobody.jpg\n"
        + "Worker,worker,,,,,,,,\n",
    )
    result = _run(app, "--community", world.a, "--photos", photos, "--consent", csv_file)
    assert result.exit_code == 1
    assert "line 2, Sneaky: photo '../people.csv' must be a file name" in result.stdout
    assert "line 3, Missing: photo 'nobody.jpg' is not in" in result.stdout
    assert "line 4, Worker: workers need a permit" in result.stdout
