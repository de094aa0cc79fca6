"""Real worker processes for the tests: ``flask worker`` started like an operator would.

``WorkerProcess`` starts one with the test app's environment, reads its log on a thread
(each line stamped with ``time.monotonic()`` when read) and waits, always bounded, for a
line or for its end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import app_environment

# A worker starts in seconds; more on a loaded CI box.
START_S = 60


@dataclass(frozen=True)
class LogLine:
    at: float  # time.monotonic() when read
    text: str


class WorkerProcess:
    """``flask worker --run-seconds S`` with ``WORKER_ID`` (unless None: the next free number)
    and a heartbeat of ``heartbeat_s``."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        mqtt_url: str,
        worker_id: str | None,
        *,
        heartbeat_s: int = 1,
        seconds: float = 60,
        log_level: str = "INFO",
        **settings: str,
    ) -> None:
        self.worker_id = worker_id
        if worker_id is not None:
            settings["WORKER_ID"] = worker_id
        environment = app_environment(
            workdir,
            database_url,
            MQTT_URL=mqtt_url,
            WORKER_HEARTBEAT_SECONDS=str(heartbeat_s),
            LOG_LEVEL=log_level,
            **settings,
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "worker", "--run-seconds", str(seconds)],
            # faulthandler: a worker that will not stop shows its threads on SIGABRT (stop()).
            env={**os.environ, **environment, "FLASK_APP": "server", "PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[LogLine] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(line.text for line in self.lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            with self._changed:
                self.lines.append(LogLine(time.monotonic(), text.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, fragment: str, timeout: float = START_S) -> LogLine | None:
        """The first log line holding ``fragment``, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if fragment in line.text), None)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0 or not self._reader.is_alive():
                    return found
                self._changed.wait(remaining)

    def kill(self) -> float:
        """SIGKILL: no goodbye, no last heartbeat. When it was sent (``time.monotonic()``)."""
        at = time.monotonic()
        self.process.kill()
        self.process.wait(timeout=30)
        return at

    def stop(self) -> str:
        """SIGTERM (a clean stop) unless it has ended; its whole log."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # its threads' stacks, into its log
            self.process.wait(timeout=30)
            self._reader.join(timeout=10)
            raise AssertionError(
                f"worker {self.worker_id} ignored SIGTERM:\n{self.output}"
            ) from None
        self._reader.join(timeout=10)
        return self.output
