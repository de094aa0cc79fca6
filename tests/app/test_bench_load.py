"""The benchmarks' load check: a figure taken on a busy machine is not printed unless forced."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench import harness

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_busy_machine_stops_the_series_unless_forced(monkeypatch, capsys):
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (1.8, 1.2, 0.9))
    slept = []
    monkeypatch.setattr(harness, "_sleep", slept.append)
    with pytest.raises(SystemExit, match=r"1\.80 is above 1\.5"):
        harness.check_load("card verify", force=False)
    assert "-- card verify: load average 1.80 1.20 0.90 (after 120 s settling)" in (
        capsys.readouterr().out
    )
    assert sum(slept) == harness.SETTLE_S  # it waited, boundedly, for the load to fall

    harness.check_load("card verify", force=True)
    printed = capsys.readouterr().out
    assert "load average 1.80 1.20 0.90" in printed
    assert "forced" in printed


def test_the_series_waits_for_the_benchmarks_own_load_to_fall(monkeypatch, capsys):
    loads = iter([(2.4, 1.0, 0.5), (1.9, 1.0, 0.5), (1.3, 1.0, 0.5)])
    current = [(2.4, 1.0, 0.5)]

    def settle(_seconds: float) -> None:
        current[0] = next(loads)

    monkeypatch.setattr(harness.os, "getloadavg", lambda: current[0])
    monkeypatch.setattr(harness, "_sleep", settle)
    harness.check_load("face verify, 4 clients", force=False)
    assert capsys.readouterr().out == (
        "-- face verify, 4 clients: load average 1.30 1.00 0.50 (after 15 s settling)\n"
    )


def test_a_quiet_machine_runs_the_series(monkeypatch, capsys):
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (0.4, 0.5, 0.6))
    harness.check_load("card verify", force=False)
    printed = capsys.readouterr().out
    assert printed == "-- card verify: load average 0.40 0.50 0.60\n"


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            names.add(node.func.id)
    return names


@pytest.mark.parametrize(
    "script",
    sorted(p.name for p in BENCH.glob("*.py") if "def main(" in p.read_text(encoding="utf-8")),
)
def test_every_benchmark_checks_the_load_and_takes_force(script):
    calls = _calls(BENCH / script)
    assert {"add_load_flag", "check_load"} <= calls, f"bench/{script} prints figures unchecked"
