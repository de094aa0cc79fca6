"""The launcher's children: each in its own process group, and gone when the launcher dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAUNCHER = """
import os, sys, time
from server import launcher
child = launcher.start_child("sleeper", ["sleep", "60"], os.environ)
print(child.process.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; init reaps it


def test_a_child_leads_its_own_group_and_ends_when_the_launcher_is_killed() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(launcher.stdout.readline())
        assert os.getpgid(child) == child
        assert _alive(child)
        launcher.send_signal(signal.SIGKILL)  # no handler runs: only the kernel can tell it
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived its launcher"
    finally:
        launcher.kill()
        launcher.wait(timeout=10)
