"""What the simulated barrier's screen shows a temporary car (``parking_screen``)."""

from __future__ import annotations

from hardware.simulate.actuators import parking_screen


def _parking(**fields) -> dict:
    return {"ticket_id": "pkt_1", "entered_at": "2026-11-21T16:30:00+08:00", **fields}


def test_the_screen_shows_the_stay_and_the_fee_of_each_answer() -> None:
    entry = {"reason": "temporary_vehicle", "parking": _parking(duration_s=0, status="inside")}
    assert parking_screen(entry) == "临时车 欢迎光临  pkt_1"
    due = {
        "reason": "payment_required",
        "parking": _parking(duration_s=2 * 3600 + 5 * 60 + 59, fee_fen=1250, status="due"),
    }
    assert parking_screen(due) == "停车 2小时05分  应缴 ¥12.50  请到岗亭缴费"
    free = {"reason": "temporary_vehicle", "parking": _parking(duration_s=600, status="free")}
    assert parking_screen(free) == "停车 10分  免费放行"
    paid = {
        "reason": "temporary_vehicle",
        "parking": _parking(duration_s=3700, fee_fen=1000, paid_fen=1000, status="paid"),
    }
    assert parking_screen(paid) == "停车 1小时01分  已缴 ¥10.00"


def test_other_answers_show_nothing() -> None:
    assert parking_screen({"decision": "grant", "reason": "resident_vehicle"}) is None
    assert parking_screen({"reason": "unknown_plate", "parking": None}) is None
