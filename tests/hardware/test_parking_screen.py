"""What the simulated barrier's screen shows a temporary car (``parking_screen``)."""

from __future__ import annotations

import io
import threading

from hardware.memory import MemoryBroker
from hardware.simulate.actuators import Barrier, parking_screen
from hardware.simulate.cli import Console
from tests.hardware.conftest import new_identity


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


class _Camera:
    """The server's answers to the barrier's plate reads (the console's layer, not the
    server's: the server side is tests/access/test_parking_e2e.py)."""

    def __init__(self, answer: dict) -> None:
        self.answer = answer

    def plate(self, *_args) -> dict:
        return self.answer


def test_the_console_prints_the_barriers_screen() -> None:
    held = {
        "decision": "deny",
        "reason": "payment_required",
        "parking": _parking(duration_s=1800, fee_fen=800, status="due"),
    }
    barrier = Barrier(new_identity("con_barrier"), MemoryBroker(), api=_Camera(held))
    out = io.StringIO()
    console = Console({barrier.device_id: barrier}, threading.Event(), out)
    console.handle("plate 京N1234学 0.9 blue out")
    assert barrier.screen == "停车 30分  应缴 ¥8.00  请到岗亭缴费"
    assert out.getvalue().splitlines()[-1] == "screen: 停车 30分  应缴 ¥8.00  请到岗亭缴费"
    barrier.api = _Camera({"decision": "grant", "reason": "resident_vehicle"})
    console.handle("plate 浙B82345 0.9 blue out")
    assert barrier.screen is None and "screen:" not in out.getvalue().splitlines()[-1]
