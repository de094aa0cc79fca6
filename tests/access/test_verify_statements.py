"""The SQL statements of each granted verify kind may not grow (a count, not a time).

Issue 19 cut them (``python -m bench.verify_statements`` prints them with the SQL): the device
with its access point and community in one statement, the subject's memberships, leases and
permit in one, a pass with its access points in one, a plate's cars, passes, blocked plates,
open presences and the strangers at its gate in one, the holiday calendar, the lockdowns and
the gate pairs only when the door's statement saw them (EXISTS), a face's gallery and
watchlist versions in the door's statement. A change that adds a statement to a verify fails
here; lower the figure when a change removes one.
"""

from __future__ import annotations

from tests.support.verify_kinds import KINDS, Statements, build_verify_site, requests_of

# Statements of one granted request, after two warm-up requests of the same kind (before
# issue 19: card 15, face 14, qr_resident 12, qr_pass 16, pin 13, plates 20).
MOST = {
    "card": 6,
    "face": 4,
    "qr_resident": 5,
    "qr_pass": 7,
    "pin": 7,
    "plate_exact": 7,
    "plate_fuzzy": 7,
}


def test_each_verify_kind_sends_no_more_statements_than_it_did(app, client, published) -> None:
    with app.app_context():
        site = build_verify_site()
    calls = requests_of(app, client, site)
    counted = {}
    for kind in KINDS:
        calls[kind]()
        calls[kind]()
        seen = Statements()
        calls[kind](seen)
        counted[kind] = seen
    over = {
        kind: (seen.count, MOST[kind], seen.sql)
        for kind, seen in counted.items()
        if seen.count > MOST[kind]
    }
    assert not over, over
    # The counter counts: every kind reads the database and stores its event.
    assert all(
        any(sql.lstrip().upper().startswith("INSERT INTO ACCESS_EVENTS") for sql in seen.sql)
        for seen in counted.values()
    ), {kind: seen.sql for kind, seen in counted.items()}
