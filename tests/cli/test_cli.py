"""Command-line tools: seed and create-user."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from server.cli import SEEDS_DIR
from server.core.auth import authenticate_user
from server.extensions import db
from server.models import AccessPoint, Building, Community, Device, Unit, User, UserRole
from tests import factories


def _counts() -> dict[str, int]:
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (Community, Building, Unit, AccessPoint, Device, User)
    }


def test_seed_loads_demo_community_and_is_idempotent(app, ctx) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    counts = _counts()
    assert counts == {
        "Community": 1,
        "Building": 2,
        "Unit": 8,
        "AccessPoint": 4,
        "Device": 9,  # with the gate's intercom terminal
        "User": 7,  # with two patrol officers on duty (dispatch)
    }
    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0, second.output
    assert "nothing new added" in second.output
    assert _counts() == counts
    # The keypad door of the courier codes (docs/couriers.md).
    keypads = db.session.scalars(select(AccessPoint.name).where(AccessPoint.has_keypad)).all()
    assert keypads == ["1号楼单元门"]

    demo = json.loads((SEEDS_DIR / "demo.json").read_text())
    for spec in demo["users"]:
        user = authenticate_user(spec["username"], spec["password"])
        assert user is not None and user.role.value == spec["role"]
    staff = db.session.scalar(select(User).where(User.username == "staff"))
    assert [c.name for c in staff.communities] == ["阳光花园 Sunny Garden"]
    from server.models import Card, Lease, RfidTag, Vehicle, WorkerPermit

    assert db.session.scalar(select(func.count()).select_from(Card)) == 3
    assert db.session.scalar(select(func.count()).select_from(RfidTag)) == 2
    # The elder's and the child's guardians, whom an officer calls (docs/audit.md).
    from server.models import Person

    guardians = {
        p.name: sorted(g.name for g in p.guardians)
        for p in db.session.scalars(select(Person).where(Person.name.in_(["赵阿姨", "王乐乐"])))
    }
    assert guardians == {"赵阿姨": ["李华"], "王乐乐": ["李华", "王小明"]}
    assert {v.plate for v in db.session.scalars(select(Vehicle))} == {"浙A12345", "浙AD12345"}
    assert db.session.scalar(select(func.count()).select_from(Lease)) == 1
    permit = db.session.scalar(select(WorkerPermit))
    assert permit.tag.value == "repair" and len(permit.access_points) == 2
    kinds = sorted(d.kind.value for d in db.session.scalars(select(Device)))
    assert kinds.count("rfid_reader") == 3 and "panic_button" in kinds and "barrier" in kinds
    from server.models import Holiday

    holiday = db.session.scalar(select(Holiday))
    assert (holiday.name, holiday.effect.value, holiday.first_day.isoformat()) == (
        "春节",
        "hours",
        "2027-02-05",
    )
    assert [p.name for p in holiday.access_points] == ["南门"]
    # The demo's site plan, drawn at seed time, and every access point placed on it.
    from server.models import SitePlan

    plan = db.session.scalar(select(SitePlan))
    assert (plan.content_type, plan.width, plan.height) == ("image/png", 1200, 800)
    placed = dict(db.session.execute(select(AccessPoint.name, AccessPoint.plan_x)).all())
    assert None not in placed.values() and placed["南门"] == 0.5
    panic = db.session.scalar(select(Device).where(Device.name == "一键报警柱"))
    assert (panic.plan_x, panic.plan_y) == (0.55, 0.62)
    # Temporary cars come in at the demo's barrier and pay by its tariff.
    demo_settings = db.session.scalar(select(Community.settings))
    assert demo_settings["temporary_cars"] is True
    assert demo_settings["parking_hour_fen"] == 500
    # Officers on duty at their posts: one-click dispatch has someone to send.
    from server.models import OfficerDuty

    posts = {
        (
            db.session.get(User, d.user_id).username,
            db.session.get(AccessPoint, d.access_point_id).name,
        )
        for d in db.session.scalars(select(OfficerDuty).where(OfficerDuty.on_duty.is_(True)))
    }
    assert posts == {("patrol1", "南门"), ("patrol2", "2号楼单元门")}


def test_seed_reports_a_broken_file(app, ctx, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"users": [{"username": "x", "role": "staff", "password": "p'
        + "x" * 10
        + '", "communities": ["Nowhere"]}]}'
    )
    result = app.test_cli_runner().invoke(args=["seed", "--file", str(broken)])
    assert result.exit_code == 1
    assert "unknown community 'Nowhere'" in result.output
    assert _counts()["User"] == 0


def test_create_user_from_stdin(app, ctx) -> None:
    community = factories.community()
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--username",
            "ops",
            "--role",
            "staff",
            "--community",
            community.id,
            "--password-stdin",
        ],
        input="a-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created staff ops" in result.output
    user = authenticate_user("ops", "a-long-password")
    assert user is not None and [c.id for c in user.communities] == [community.id]


def test_create_user_prompts_without_flag(app, ctx) -> None:
    result = app.test_cli_runner().invoke(
        args=["create-user", "--username", "root2", "--role", "admin"],
        input="a-long-password\na-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert authenticate_user("root2", "a-long-password").role is UserRole.ADMIN


def test_create_user_errors_are_messages(app, ctx) -> None:
    runner = app.test_cli_runner()
    cases = [
        (
            ["--username", "user1", "--role", "staff"],
            "a-long-password\n",
            "needs at least one community",
        ),
        (
            ["--username", "user2", "--role", "staff", "--community", "com_missing"],
            "a-long-password\n",
            "No community with id 'com_missing'",
        ),
        (["--username", "user3", "--role", "admin"], "short\n", "password: Length must be"),
        (["--username", "user4", "--role", "wizard"], "a-long-password\n", "Invalid value"),
        (["--username", "user5", "--role", "resident"], "a-long-password\n", "needs a unit"),
    ]
    for args, stdin, message in cases:
        result = runner.invoke(args=["create-user", *args, "--password-stdin"], input=stdin)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert _counts()["User"] == 0


def test_create_user_duplicate_username(app, ctx) -> None:
    factories.user(UserRole.ADMIN, username="taken")
    result = app.test_cli_runner().invoke(
        args=["create-user", "--username", "taken", "--role", "admin", "--password-stdin"],
        input="a-long-password\n",
    )
    assert result.exit_code == 1
    assert "username 'taken' is taken" in result.output


def test_demo_fleet_lists_seeded_devices_with_their_secrets(app, ctx, tmp_path: Path) -> None:
    from server.devices.service import set_secret

    runner = app.test_cli_runner()
    out = tmp_path / "fleet.json"
    empty = runner.invoke(args=["demo-fleet", "--out", str(out)])
    assert empty.exit_code == 1 and "run 'flask seed' first" in empty.output
    assert runner.invoke(args=["seed"]).exit_code == 0
    rotated = db.session.scalar(select(Device).where(Device.name == "一键报警柱"))
    set_secret(rotated)  # its demo secret no longer works: leave it out
    db.session.commit()
    result = runner.invoke(args=["demo-fleet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    fleet = json.loads(out.read_text())
    assert out.stat().st_mode & 0o777 == 0o600
    demo = {
        d["name"]: d["secret"]
        for d in json.loads((SEEDS_DIR / "demo.json").read_text())["communities"][0]["devices"]
    }
    # Every seeded device but the rotated one (the seed file grows: count it there).
    assert len(fleet) == len(demo) - 1 >= 7 and rotated.id not in {d["device_id"] for d in fleet}
    for entry in fleet:
        device = db.session.get(Device, entry["device_id"])
        assert entry["secret"] == demo[device.name]
        assert entry["kind"] == device.kind.value and entry["community_id"] == device.community_id


def test_seed_refuses_bad_community_settings(app, ctx, tmp_path: Path) -> None:
    broken = tmp_path / "tariff.json"
    broken.write_text(
        '{"communities": [{"name": "X", "settings": {"parking_hour_fen": -5}}]}',
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["seed", "--file", str(broken)])
    assert result.exit_code == 1
    assert "bad community settings" in result.output and "parking_hour_fen" in result.output
    assert _counts()["Community"] == 0
