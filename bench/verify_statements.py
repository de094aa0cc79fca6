"""Benchmark: the SQL statements each verify kind sends, and its time in process.

One community where every kind is granted (``tests/support/verify_kinds.py``: a resident with
a card, an enrolled face, a car, a rotating code, a courier code, and a visitor pass). Each
kind is warmed up with two requests, then one request is counted (SQLAlchemy's
``before_cursor_execute``: what reaches the driver, ``BEGIN``/``COMMIT`` not included), the
Python function calls of five more are counted (cProfile: the Python work, whatever the load;
the test client's own calls included, and for ``qr_resident`` the making of each code) and
``--requests`` more are timed through the Flask test client (no socket). ``--sql`` prints the
statements of the counted request. ``tests/access/test_verify_statements.py`` keeps the counts
from growing.

    python -m tests.fetch_test_data   # the face photos
    .venv/bin/python -m bench.verify_statements [--requests 50] [--sql] [--force]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the server does, before numpy loads

import argparse
import cProfile
import pstats
import time

from flask_migrate import upgrade

from bench.harness import add_load_flag, bench_app, check_load, line
from server.extensions import db
from tests.support.verify_kinds import KINDS, Statements, build_verify_site, requests_of

# A keypad may try 30 PINs a minute (the server's limit, a guess at a code's 6 digits is the
# attack): the warm-up and profiled requests count too.
AT_MOST = {"pin": 15}
PROFILED = 5  # requests of each kind whose Python function calls are counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="timed requests per kind")
    parser.add_argument("--sql", action="store_true", help="print each counted statement")
    parser.add_argument("--full", action="store_true", help="with --sql: not cut at 240 chars")
    add_load_flag(parser)
    args = parser.parse_args()

    app, _publisher = bench_app("statements")
    with app.app_context():
        upgrade()
        site = build_verify_site()
        db.session.remove()
    client = app.test_client()
    calls = requests_of(app, client, site)
    counted, python_calls = {}, {}
    for kind in KINDS:
        calls[kind]()
        calls[kind]()
        counted[kind] = Statements()
        calls[kind](counted[kind])
        profiler = cProfile.Profile()  # function calls: a measure of Python work load ignores
        profiler.enable()
        for _ in range(PROFILED):
            calls[kind]()
        profiler.disable()
        python_calls[kind] = pstats.Stats(profiler).total_calls // PROFILED
    check_load("statements per verify, and time in process", args.force)
    for kind in KINDS:
        ms = []
        for _ in range(min(args.requests, AT_MOST.get(kind, args.requests))):
            started = time.perf_counter()
            calls[kind]()
            ms.append((time.perf_counter() - started) * 1000)
        print(
            f"{counted[kind].count:3d} statements {python_calls[kind]:6d} Python calls  "
            + line(kind, ms, decimals=2)
        )
        if args.sql:
            for statement in counted[kind].sql:
                print("      " + " ".join(statement.split())[: None if args.full else 240])


if __name__ == "__main__":
    main()
