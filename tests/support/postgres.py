"""A throwaway PostgreSQL cluster for the test suite: initdb and pg_ctl on a temp folder."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.clock import daemon_environment
from tests.support.net import free_port, wait_for_port


def pg_bin() -> Path:
    """The folder with initdb and pg_ctl (PG_BIN, else the newest /usr/lib/postgresql/*/bin)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: apt-get install postgresql "
        "(make test does this) or set PG_BIN"
    )


class PostgresCluster:
    """A cluster on 127.0.0.1 and a free port, trusting local connections, deleted on stop."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gk-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.bin = pg_bin()
        # PostgreSQL refuses to run as root: run it as the 'postgres' user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args],
            check=True,
            capture_output=True,
            timeout=120,
            env=daemon_environment(),
        )

    def start(self) -> None:
        if self._as:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        self.resume()

    def resume(self) -> None:
        """Start the server on the existing data (after ``start`` made it, or ``pause``)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.root / "log"),
            "start",
        )
        wait_for_port(self.port)

    def pause(self) -> None:
        """Stop the server, keeping its data: the database is down until ``resume``."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            self.url("postgres").replace("+psycopg", ""), autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
