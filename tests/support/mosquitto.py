"""A throwaway Mosquitto broker on a free loopback port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.net import free_port, wait_for_port


class Broker:
    """Mosquitto started from a generated config; ``url`` is what clients connect to."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gk-mqtt-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.executable = executable

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.root / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.root}/\n"
        )
        self.process = subprocess.Popen(
            [self.executable, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
