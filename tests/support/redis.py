"""A throwaway Redis on a free loopback port, keeping nothing on disk."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.clock import daemon_environment
from tests.support.net import free_port, wait_for_port


class RedisServer:
    """``redis-server`` started for a test; ``url`` is what Flask-Limiter is given."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gk-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        options = {"bind": "127.0.0.1", "port": str(self.port), "save": "", "appendonly": "no"}
        arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
        self.process = subprocess.Popen(
            [executable, *arguments, "--dir", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=daemon_environment(),
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
