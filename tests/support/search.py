"""People whose names hold LIKE's wildcards, and the searches that must take them literally.

Shared by the API's list and the staff pages' list: both search through
``server.people.service.search_people``, and both must answer the same.
"""

from __future__ import annotations

from flask import Flask

from server.extensions import db
from server.models import Person, PersonStatus

# Names where LIKE's wildcards (% and _) and its escape (\\) are plain characters.
SEARCHABLE = ("Ann_Lee", "AnnXLee", "50% Wang", "500 Wang", "Back\\slash", "Backslash")

# (q, the names found): what each search must find, and nothing more.
LITERAL_SEARCHES = [
    ("%", ["50% Wang", "Phone Only"]),
    ("_", ["Ann_Lee", "Phone Only"]),
    ("n_l", ["Ann_Lee"]),  # not AnnXLee: _ is no wildcard; any case
    ("N_L", ["Ann_Lee"]),
    ("ANNX", ["AnnXLee"]),
    ("0%", ["50% Wang", "Phone Only"]),  # not 500 Wang
    ("\\", ["Back\\slash"]),
    ("\\s", ["Back\\slash"]),  # not Backslash: the backslash is no escape
    ("BACK", ["Back\\slash", "Backslash"]),
    ("138_", ["Phone Only"]),
    ("%%", []),
]


def add_searchable_people(app: Flask, community_id: str) -> None:
    """``SEARCHABLE`` people in the community, and one found only by a phone with wildcards."""
    with app.app_context():
        db.session.add_all(
            Person(community_id=community_id, name=name, status=PersonStatus.ACTIVE)
            for name in SEARCHABLE
        )
        db.session.add(
            Person(
                community_id=community_id,
                name="Phone Only",
                phone="138_0000%1",
                status=PersonStatus.ACTIVE,
            )
        )
        db.session.commit()
