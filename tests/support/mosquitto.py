"""A throwaway Mosquitto broker on a free loopback port.

``Broker()`` admits anonymous clients on one listener. ``Broker(directory=...,
accounts=[...])`` (either argument turns it on) is configured like the launcher's broker:
no anonymous access, the password files and ACL in ``directory`` (written from
``accounts`` when given), a pid file for SIGHUP, persistence that survives ``restart()``,
and two listeners: devices and officers on ``port``/``url``, where the client id is the
username, and the server's accounts on ``server_port``/``server_url``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from hardware.broker import MAX_QUEUED_MESSAGES, BrokerAccount, mosquitto_config, write_broker_files
from tests.support.clock import daemon_environment
from tests.support.net import free_port, wait_for_port


class Broker:
    """Mosquitto started from a generated config; ``url`` is what clients connect to."""

    def __init__(
        self,
        directory: Path | str | None = None,
        accounts: Iterable[BrokerAccount] | None = None,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gk-mqtt-"))
        self.port = free_port()
        self.server_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.executable = executable
        self.authenticated = directory is not None or accounts is not None
        # Where passwd and acl live (the app's MQTT_BROKER_DIR in authenticated mode).
        self.directory = Path(directory) if directory is not None else self.root / "files"
        self.accounts = list(accounts) if accounts is not None else None

    @property
    def url(self) -> str:
        """Where devices and officers connect (every client, on an anonymous broker)."""
        return f"mqtt://127.0.0.1:{self.port}"

    def server_url(self, username: str, password: str) -> str:
        """Where the server's processes connect, as ``username``."""
        port = self.server_port if self.authenticated else self.port
        return f"mqtt://{username}:{password}@127.0.0.1:{port}"

    @property
    def pidfile(self) -> Path:
        return self.root / "mosquitto.pid"

    @property
    def log(self) -> str:
        """What an authenticated broker logged so far (for assertion messages)."""
        path = self.root / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        # Run as ourselves: as root Mosquitto would switch to the 'mosquitto' user, which cannot
        # write the pid and persistence files here (sessions would not survive restart()).
        user = pwd.getpwuid(os.geteuid()).pw_name
        config = self.root / "mosquitto.conf"
        if not self.authenticated:
            config.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {user}\n"
                f"persistence true\npersistence_location {self.root}/\n"
                f"max_queued_messages {MAX_QUEUED_MESSAGES}\n"
            )
        else:
            if self.accounts is not None:
                write_broker_files(self.directory, self.accounts)
                self.accounts = None  # written once; later changes come from the files
            elif not (self.directory / "passwd").exists():
                write_broker_files(self.directory, [])
            config.write_text(
                mosquitto_config(
                    "127.0.0.1",
                    self.port,
                    self.directory,
                    self.root,
                    server_port=self.server_port,
                    pid_file=self.pidfile,
                    user=user,
                    log_dest=(f"file {self.root / 'mosquitto.log'}",),
                )
            )
        self.process = subprocess.Popen(
            [self.executable, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=daemon_environment(),
        )
        wait_for_port(self.port)
        if self.authenticated:
            wait_for_port(self.server_port)
        deadline = time.monotonic() + 10
        while self.authenticated and not self.pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password file and ACL."""
        assert self.process is not None, "the broker is not running"
        self.process.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        """Stop and start again on the same port; persisted sessions and messages are kept."""
        self._terminate()
        self.start()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    def _terminate(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        self.pidfile.unlink(missing_ok=True)
