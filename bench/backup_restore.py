"""A backup restored for real: ``pg_dump`` of a seeded PostgreSQL, ``pg_restore`` into a fresh
cluster, every table's rows counted on both sides (docs/deploy.md, "Backups").

    .venv/bin/python -m bench.backup_restore [--events 200000]

Two throwaway PostgreSQL clusters (initdb/pg_ctl, as the tests start them). The first gets the
schema (``flask db upgrade``), the demo community (``flask seed``) and ``--events`` access
events spread over the last day; it is dumped in the custom format (``pg_dump -Fc``) and
restored into an empty database of the second (``pg_restore -j 2``). Prints each command, the
dump's size, the times, the row counts of both sides, and whether the app reads the restored
database (``flask db current`` names the same migration).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet

from bench.harness import add_load_flag, check_load, load_average
from tests.support.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``command`` (printed first); its wall time in seconds."""
    print("$", shlex.join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 (the argv is built here)
        command, check=True, env=env, cwd=ROOT, capture_output=True, text=True
    )
    return time.perf_counter() - started


def flask(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603 (the argv is built here)
        [sys.executable, "-m", "flask", "--app", "server", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def plain(url: str) -> str:
    return url.replace("+psycopg", "")


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(plain(url)) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        return {
            table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608
            for table in tables
        }


def database_mib(url: str) -> float:
    with psycopg.connect(plain(url)) as connection:
        size = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return size / 2**20


def add_events(url: str, count: int) -> None:
    """``count`` access events at the demo's first door, over the last 24 hours (one INSERT)."""
    with psycopg.connect(plain(url)) as connection:
        device, point, community = connection.execute(
            "SELECT id, access_point_id, community_id FROM devices "
            "WHERE access_point_id IS NOT NULL ORDER BY id LIMIT 1"
        ).fetchone()
        connection.execute(
            """
            INSERT INTO access_events (id, community_id, occurred_at, access_point_id,
                device_id, credential_type, decision, reason, rule, details)
            SELECT 'evt_bench' || lpad(n::text, 17, '0'), %(community)s,
                now() - (n %% 86400) * interval '1 second', %(point)s, %(device)s,
                (ARRAY['card', 'face', 'qr', 'plate'])[1 + n %% 4],
                CASE WHEN n %% 10 = 0 THEN 'deny' ELSE 'grant' END,
                CASE WHEN n %% 10 = 0 THEN 'unknown_card' ELSE 'resident' END,
                'bench', '{}'::json
            FROM generate_series(1, %(count)s) AS n
            """,
            {"community": community, "point": point, "device": device, "count": count},
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    add_load_flag(parser)
    args = parser.parse_args()
    check_load("set-up", args.force)
    source, target = PostgresCluster(), PostgresCluster()
    workdir = Path(tempfile.mkdtemp(prefix="gk-backup-"))
    try:
        source.start()
        target.start()
        source_url = source.create_database("gatekeeper")
        env = {
            **os.environ,
            "GK_ENV": "development",
            "INSTANCE_DIR": str(workdir / "instance"),
            "DATABASE_URL": source_url,
            "DATA_KEY": Fernet.generate_key().decode(),
            "SECRET_KEY": "backup-bench-" + "x" * 32,
            "LOG_LEVEL": "WARNING",
        }
        flask(env, "db", "upgrade")
        flask(env, "seed")
        add_events(source_url, args.events)
        dump = workdir / "gatekeeper.dump"
        pg = source.bin
        check_load("pg_dump, then pg_restore", args.force)
        dump_s = run(
            [str(pg / "pg_dump"), "-Fc", "-d", plain(source_url), "-f", str(dump)],
        )
        target_url = target.create_database("gatekeeper")
        restore_s = run(
            [
                str(pg / "pg_restore"),
                "--no-owner",
                "--exit-on-error",
                "-j",
                "2",
                "-d",
                plain(target_url),
                str(dump),
            ]
        )
        before, after = row_counts(source_url), row_counts(target_url)
        migration = {
            name: flask({**env, "DATABASE_URL": url}, "db", "current").splitlines()[-1]
            for name, url in (("source", source_url), ("restored", target_url))
        }
        print(f"\nPostgreSQL {pg.parent.name}; load average {load_average()}")
        print(f"database: {database_mib(source_url):.0f} MiB on disk, restored "
              f"{database_mib(target_url):.0f} MiB")  # fmt: skip
        print(f"dump: {dump.stat().st_size / 2**20:.1f} MiB in {dump_s:.2f} s")
        print(f"restore (-j 2): {restore_s:.2f} s")
        print(f"{'table':32} {'dumped':>10} {'restored':>10}")
        for table in sorted(before):
            if before[table] or after.get(table):
                print(f"{table:32} {before[table]:>10} {after.get(table, -1):>10}")
        same = before == after
        print(f"tables: {len(before)}, rows: {sum(before.values())}, identical: {same}")
        print(f"migration: source {migration['source']!r}, restored {migration['restored']!r}")
        return 0 if same and migration["source"] == migration["restored"] else 1
    finally:
        source.stop()
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
